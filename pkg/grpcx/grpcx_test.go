package grpcx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// serve starts a server built with opts on a loopback port until the test ends.
func serve(t *testing.T, opts ...grpcx.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpcx.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return l.Addr().String()
}

func check(t *testing.T, conn *grpc.ClientConn) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return resp.GetStatus(), err
}

func TestDialReachesServerThroughInterceptors(t *testing.T) {
	t.Parallel()
	var serverCalls, clientCalls atomic.Int32
	addr := serve(t, grpcx.WithServerInterceptors([]grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			serverCalls.Add(1)
			return h(ctx, req)
		}}, nil))
	conn, err := grpcx.Dial(addr, grpcx.WithClientInterceptors([]grpc.UnaryClientInterceptor{
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			clientCalls.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		}}, nil))
	require.NoError(t, err)
	defer conn.Close()

	status, err := check(t, conn)
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, status)
	require.Equal(t, int32(1), serverCalls.Load())
	require.Equal(t, int32(1), clientCalls.Load())
}

func TestCredentialsAreAParameter(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	addr := serve(t, grpcx.WithServerCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))

	t.Run("TLSClientIsServed", func(t *testing.T) {
		t.Parallel()
		conn, err := grpcx.Dial(addr, grpcx.WithDialCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})))
		require.NoError(t, err)
		defer conn.Close()
		status, err := check(t, conn)
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, status)
	})
	t.Run("PlaintextClientIsRefused", func(t *testing.T) {
		t.Parallel()
		conn, err := grpcx.Dial(addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = check(t, conn)
		require.Error(t, err)
	})
}

// selfSigned is a certificate for localhost and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
