package grpcx_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// TestMaxConnectionAgeEndsALongLivedConnection holds a call open on a connection
// to a server of NewServer, with its connection age and grace shortened, and
// waits for the server to end the connection: the call open past the grace is
// cut (UNAVAILABLE), the client's connection is closed, and the next call is
// made on a new connection, which a client whose certificate was revoked could
// not open (a new handshake). The age is the only setting changed.
func TestMaxConnectionAgeEndsALongLivedConnection(t *testing.T) {
	t.Parallel()
	// Far beyond the shortened age and grace (+10 % jitter) on a loaded machine;
	// the test asserts that the events happen, not when.
	const generous = time.Minute
	addr := serve(t, grpcx.WithConnectionAge(time.Second, time.Second))
	dials := &dialedConns{}
	conn, err := grpcx.Dial(addr, grpcx.WithGRPCDialOptions(grpc.WithContextDialer(dials.dial)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	stream := watchOnce(t, conn)
	first := dials.get(t, 0)

	// The watch lasts until its context ends, unless its connection does.
	cut := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		cut <- err
	}()
	select {
	case err := <-cut:
		require.Equal(t, codes.Unavailable, status.Code(err), "the open call ended otherwise: %v", err)
	case <-time.After(generous):
		t.Fatalf("a call open on a connection past its age and grace was not cut within %s", generous)
	}
	select {
	case <-first.closed:
	case <-time.After(generous):
		t.Fatalf("the aged connection was not closed within %s", generous)
	}

	_, err = check(t, conn)
	require.NoError(t, err, "the client did not reconnect after its connection was ended")
	require.GreaterOrEqual(t, dials.count(), 2, "the call after the end went over a new connection")
}

// dialedConns keeps every connection a client dials, each telling when it is closed.
type dialedConns struct {
	mu    sync.Mutex
	conns []*closeNotifyingConn
}

type closeNotifyingConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *closeNotifyingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (d *dialedConns) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	nc := &closeNotifyingConn{Conn: c, closed: make(chan struct{})}
	d.mu.Lock()
	d.conns = append(d.conns, nc)
	d.mu.Unlock()
	return nc, nil
}

func (d *dialedConns) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// get is the i-th connection dialed; the call that made it has been answered.
func (d *dialedConns) get(t *testing.T, i int) *closeNotifyingConn {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Greater(t, len(d.conns), i, "connections dialed")
	return d.conns[i]
}
