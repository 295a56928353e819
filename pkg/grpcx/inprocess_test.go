package grpcx_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// TestDialInProcessCarriesThePeer calls an mTLS server (no policy file: only
// health open) in process, as the coordinator's HTTP front end does: the call
// goes through the server's interceptors with the peer it was given — the
// address, and the identity of a TLS state verified by HTTPServerTLS — and
// without a TLS state it has no identity, so authorization refuses it
// UNAUTHENTICATED where a verified identity gets PERMISSION_DENIED.
func TestDialInProcessCarriesThePeer(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, serverFiles, clientFiles := twoBundles(t)
	sec := grpcx.Security{TLS: serverFiles}
	opts, err := sec.ServerOptions(logger)
	require.NoError(t, err)
	type seen struct {
		addr, identity string
	}
	calls := make(chan seen, 10)
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, _ := peer.FromContext(ctx)
		id, _ := grpcx.CallerIdentity(ctx)
		calls <- seen{p.Addr.String(), id}
		return handler(ctx, req)
	}
	srv := grpcx.NewServer(logger, append(opts, grpcx.WithServerInterceptors([]grpc.UnaryServerInterceptor{record}, nil))...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	state := verifiedState(t, sec, clientFiles)
	caller := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4242}
	for _, tc := range []struct {
		name     string
		state    *tls.ConnectionState
		identity string
		refused  codes.Code
	}{
		{"VerifiedCertificate", state, "spiffe://payroll/ops", codes.PermissionDenied},
		{"NoTLSState", nil, "", codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := srv.DialInProcess(caller, tc.state)
			require.NoError(t, err)
			defer conn.Close()
			st, err := check(t, conn)
			require.NoError(t, err)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, st)
			require.Equal(t, seen{caller.String(), tc.identity}, <-calls)

			stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
			require.NoError(t, err)
			if err := stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
				require.ErrorIs(t, err, io.EOF)
			}
			_, err = stream.Recv()
			require.Equal(t, tc.refused, statusCode(err), "%v", err)
		})
	}
}

// verifiedState is the TLS state of a connection served with
// sec.HTTPServerTLS from a client presenting files' certificate. A client
// without a certificate is refused.
func verifiedState(t *testing.T, sec grpcx.Security, files grpcx.TLSFiles) *tls.ConnectionState {
	t.Helper()
	cfg, err := sec.HTTPServerTLS(nil)
	require.NoError(t, err)
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	defer l.Close()
	states := make(chan *tls.ConnectionState, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() != nil {
				states <- nil
			} else {
				s := tc.ConnectionState()
				states <- &s
			}
			_ = c.Close()
		}
	}()
	roots, cert := clientMaterial(t, files)

	// Without a certificate: the server's handshake fails.
	anon, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13})
	if err == nil {
		_, _ = anon.Read(make([]byte, 1)) // TLS 1.3: the refusal comes after the client's handshake
		_ = anon.Close()
	}
	require.Nil(t, <-states)

	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert},
		MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	state := <-states
	_ = c.Close()
	require.NotNil(t, state)
	require.NotEmpty(t, state.VerifiedChains)
	return state
}

// clientMaterial is what a client holding files trusts (their CA) and presents
// (their certificate).
func clientMaterial(t *testing.T, files grpcx.TLSFiles) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caPEM, err := os.ReadFile(files.CA)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	require.NoError(t, err)
	return roots, cert
}
