package grpcx_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// TestHandlerOfAVanishedClientIsCancelled holds a call open on a server of
// NewServer (a health Watch, which lasts until its context ends), makes the
// client vanish, and waits for the server to cancel the call's context: a worker
// must not go on with an orphaned chunk after its coordinator died.
func TestHandlerOfAVanishedClientIsCancelled(t *testing.T) {
	t.Parallel()
	// Long enough for keepalive to notice a silent client (a ping unanswered),
	// far shorter than a chunk's soft timeout.
	const within = grpcx.KeepaliveTime + grpcx.KeepaliveTimeout + 5*time.Second

	t.Run("ConnectionClosedUnderTheClient", func(t *testing.T) {
		t.Parallel()
		// The client's process dies: its kernel closes the socket, no GOAWAY is sent.
		handler, addr := serveWatch(t)
		conns := make(chan net.Conn, 1)
		conn := dialVia(t, addr, conns)
		watchOnce(t, conn)
		raw := <-conns
		ctx := <-handler
		require.NoError(t, raw.Close())
		requireDone(t, ctx, within)
	})
	t.Run("ClientFallsSilent", func(t *testing.T) {
		t.Parallel()
		// The client's host dies or the network is cut: nothing is closed, nothing
		// more arrives. Only the server's keepalive ping can tell.
		handler, addr := serveWatch(t)
		proxy := startSilentProxy(t, addr)
		conn := dialVia(t, proxy.addr, nil)
		watchOnce(t, conn)
		ctx := <-handler
		proxy.frozen.Store(true)
		requireDone(t, ctx, within)
	})
}

// serveWatch serves NewServer and hands over the context of each stream handler
// it runs.
func serveWatch(t *testing.T) (<-chan context.Context, string) {
	t.Helper()
	handler := make(chan context.Context, 1)
	addr := serve(t, grpcx.WithServerInterceptors(nil, []grpc.StreamServerInterceptor{
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			handler <- ss.Context()
			return h(srv, ss)
		}}))
	return handler, addr
}

// dialVia dials addr with Dial, handing over the raw connection it makes to conns
// (when not nil).
func dialVia(t *testing.T, addr string, conns chan<- net.Conn) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcx.Dial(addr, grpcx.WithGRPCDialOptions(grpc.WithContextDialer(
		func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err == nil && conns != nil {
				select { // the first one only: a reconnection is not waited for
				case conns <- c:
				default:
				}
			}
			return c, err
		})))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// watchOnce opens a health Watch and reads its first answer: the call is then in
// the server's handler, and stays there until its connection ends or the test does.
func watchOnce(t *testing.T, conn *grpc.ClientConn) healthpb.Health_WatchClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	return stream
}

func requireDone(t *testing.T, ctx context.Context, within time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(within):
		t.Fatalf("the handler's context was not cancelled within %s of its client vanishing", within)
	}
	require.Error(t, ctx.Err())
}

// silentProxy forwards TCP connections to a server until frozen; from then on it
// passes nothing either way and closes nothing: to each side the other has gone
// silent, as a peer whose host died or whose network was cut does.
type silentProxy struct {
	addr   string
	frozen atomic.Bool
}

func startSilentProxy(t *testing.T, target string) *silentProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &silentProxy{addr: l.Addr().String()}
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			_ = c.Close()
		}
	})
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			mu.Lock()
			open = append(open, client, server)
			mu.Unlock()
			go p.pipe(server, client)
			go p.pipe(client, server)
		}
	}()
	return p
}

// pipe copies src to dst until either fails or the proxy is frozen; it never
// closes either.
func (p *silentProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.frozen.Load() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
