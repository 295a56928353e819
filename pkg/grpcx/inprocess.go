package grpcx

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// inProcessBuffer is the buffer of each direction of an in-process connection.
const inProcessBuffer = 256 << 10

// A server's in-process connections let a front end of the same process (the
// coordinator's HTTP gateway) call it through the very server its remote callers
// reach: the same interceptors (call observer, audit, authorization), limits and
// handlers. Each connection carries the peer its front end verified — the
// caller's address and, on TLS, the TLS state with the client certificate's
// verified chains — and the server's credentials hand that peer to grpc-go
// instead of running a handshake, so CallerIdentity, the per-caller limits and
// the audit see the front end's caller.
//
// Only this process can make one: a connection is recognised by its Go type,
// which the server's network listener never yields, and its peer is set by the
// code that built it, never read from the bytes it carries.
type inProcessConn struct {
	net.Conn
	remote net.Addr
	auth   credentials.AuthInfo
}

func (c *inProcessConn) RemoteAddr() net.Addr { return c.remote }

// inProcessListener is what Serve serves the in-process connections on.
type inProcessListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newInProcessListener() *inProcessListener {
	return &inProcessListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *inProcessListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *inProcessListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *inProcessListener) Addr() net.Addr { return inProcessAddr{} }

type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "in-process" }
func (inProcessAddr) String() string  { return "in-process" }

// inProcessCredentials are a server's credentials: an in-process connection's
// peer is the one it carries; any other connection goes through base (TLS or
// plaintext) as before.
type inProcessCredentials struct {
	credentials.TransportCredentials
}

func (c inProcessCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if ipc, ok := conn.(*inProcessConn); ok {
		return ipc, ipc.auth, nil
	}
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c inProcessCredentials) Clone() credentials.TransportCredentials {
	return inProcessCredentials{c.TransportCredentials.Clone()}
}

// plaintextPeer is the AuthInfo of an in-process connection whose caller came
// in plaintext: no identity, as on the plaintext gRPC port.
type plaintextPeer struct{ credentials.CommonAuthInfo }

func (plaintextPeer) AuthType() string { return "insecure" }

// DialInProcess connects to s in process as the caller at remote, with the TLS
// state state of the connection it came in on (nil: plaintext). On TLS the
// caller's identity is that of state's verified chains (CallerIdentity), so
// state must come from a handshake that required and verified the client's
// certificate against the server's CA (Security.HTTPServerTLS); s's
// authorization refuses a state without verified chains UNAUTHENTICATED. The
// connection is made on the first call; close it when done.
func (s *Server) DialInProcess(remote net.Addr, state *tls.ConnectionState) (*grpc.ClientConn, error) {
	var auth credentials.AuthInfo = plaintextPeer{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	if state != nil {
		auth = credentials.TLSInfo{State: *state,
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	if remote == nil {
		remote = inProcessAddr{}
	}
	return grpc.NewClient("passthrough:///in-process",
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the bytes never leave the process
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			// A pipe of its own per connection, so that the server side is handed
			// over with this caller's peer.
			pipe := bufconn.Listen(inProcessBuffer)
			defer pipe.Close() // ends the Accept below when the dial failed
			accepted := make(chan net.Conn, 1)
			go func() {
				if c, err := pipe.Accept(); err == nil {
					accepted <- c
				}
			}()
			client, err := pipe.DialContext(ctx)
			if err != nil {
				return nil, err
			}
			server := &inProcessConn{Conn: <-accepted, remote: remote, auth: auth}
			select {
			case s.inProcess.conns <- server:
				return client, nil
			case <-s.inProcess.done:
				_ = client.Close()
				return nil, errors.New("the server is shutting down")
			case <-ctx.Done():
				_ = client.Close()
				return nil, ctx.Err()
			}
		}))
}
