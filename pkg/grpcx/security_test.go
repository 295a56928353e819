package grpcx_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/devca"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

func TestSecurityFromEnv(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	t.Run("NoneIsPlaintext", func(t *testing.T) {
		t.Parallel()
		s, err := grpcx.SecurityFromEnv(env(nil))
		require.NoError(t, err)
		require.False(t, s.TLS.Enabled())
	})
	t.Run("AllThree", func(t *testing.T) {
		t.Parallel()
		s, err := grpcx.SecurityFromEnv(env(map[string]string{"TLS_CERT_FILE": "c", "TLS_KEY_FILE": "k", "TLS_CA_FILE": "a",
			"AUTHZ_POLICY_FILE": "p"}))
		require.NoError(t, err)
		require.Equal(t, grpcx.Security{TLS: grpcx.TLSFiles{Cert: "c", Key: "k", CA: "a"}, PolicyFile: "p",
			Identities: grpcx.IdentityPolicy{TrustDomain: grpcx.DefaultTrustDomain}}, s)
	})
	t.Run("TrustDomainAndDNSIdentities", func(t *testing.T) {
		t.Parallel()
		s, err := grpcx.SecurityFromEnv(env(map[string]string{"TLS_TRUST_DOMAIN": "example.org", "TLS_ALLOW_DNS_IDENTITY": "true"}))
		require.NoError(t, err)
		require.Equal(t, grpcx.IdentityPolicy{TrustDomain: "example.org", AllowDNS: true}, s.Identities)
		_, err = grpcx.SecurityFromEnv(env(map[string]string{"TLS_ALLOW_DNS_IDENTITY": "maybe"}))
		require.ErrorContains(t, err, "TLS_ALLOW_DNS_IDENTITY")
	})
	t.Run("PartialNamesTheMissing", func(t *testing.T) {
		t.Parallel()
		_, err := grpcx.SecurityFromEnv(env(map[string]string{"TLS_CERT_FILE": "c"}))
		require.ErrorContains(t, err, "TLS_KEY_FILE and TLS_CA_FILE not set")
		_, err = grpcx.SecurityFromEnv(env(map[string]string{"TLS_CERT_FILE": "c", "TLS_KEY_FILE": "k"}))
		require.ErrorContains(t, err, ": TLS_CA_FILE not set")
	})
	t.Run("PlaintextOnlyWhenAllowed", func(t *testing.T) {
		t.Parallel()
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		s, err := grpcx.SecurityFromEnv(env(nil))
		require.NoError(t, err)
		_, err = s.ServerOptions(logger)
		require.ErrorIs(t, err, grpcx.ErrPlaintextRefused)
		require.ErrorContains(t, err, "ALLOW_PLAINTEXT=true")
		s, err = grpcx.SecurityFromEnv(env(map[string]string{"ALLOW_PLAINTEXT": "true"}))
		require.NoError(t, err)
		opts, err := s.ServerOptions(logger)
		require.NoError(t, err)
		require.Empty(t, opts)
		_, err = grpcx.SecurityFromEnv(env(map[string]string{"ALLOW_PLAINTEXT": "yes please"}))
		require.ErrorContains(t, err, "ALLOW_PLAINTEXT")
	})
	t.Run("PolicyWithoutTLS", func(t *testing.T) {
		t.Parallel()
		_, err := grpcx.SecurityFromEnv(env(map[string]string{"AUTHZ_POLICY_FILE": "p"}))
		require.ErrorContains(t, err, "AUTHZ_POLICY_FILE needs mTLS")
	})
}

// TestNoPolicyOpensOnlyHealth serves mTLS without a policy file: health
// answers, anything else (reflection here) is PERMISSION_DENIED even to a
// certificate of the right CA; and a plaintext client gets nothing.
func TestNoPolicyOpensOnlyHealth(t *testing.T) {
	t.Parallel()
	_, server, client := twoBundles(t)
	addr := serveSecure(t, grpcx.Security{TLS: server})

	conn := dialFiles(t, addr, client)
	st, err := check(t, conn)
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, st)
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	require.NoError(t, err)
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		require.ErrorIs(t, err, io.EOF)
	}
	_, err = stream.Recv()
	require.Equal(t, codes.PermissionDenied, statusCode(err), "%v", err)

	plain, err := grpcx.Dial(addr)
	require.NoError(t, err)
	defer plain.Close()
	_, err = check(t, plain)
	require.Equal(t, codes.Unavailable, statusCode(err), "%v", err)
}

// TestPolicyIsReloaded changes the policy file under a serving server: the new
// rules apply without a restart.
func TestPolicyIsReloaded(t *testing.T) {
	t.Parallel()
	dir, server, client := twoBundles(t)
	policy := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte("rules: []\n"), 0o600))
	addr := serveSecure(t, grpcx.Security{TLS: server, PolicyFile: policy})
	conn := dialFiles(t, addr, client)
	list := func() error {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
		if err != nil {
			return err
		}
		_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		_, err = stream.Recv()
		return err
	}
	require.Equal(t, codes.PermissionDenied, statusCode(list()))
	require.NoError(t, os.WriteFile(policy, []byte(`rules:
  - identities: ["spiffe://payroll/ops"]
    methods: ["grpc.reflection.v1.ServerReflection/*"]
`), 0o600))
	require.Eventually(t, func() bool { return list() == nil }, 10*grpcx.PolicyRecheck, 50*time.Millisecond)
}

// twoBundles makes a CA and writes, under a directory of the test's, the
// certificates of a server (spiffe://payroll/coordinator) and a client
// (spiffe://payroll/ops) it signed.
func twoBundles(t *testing.T) (dir string, server, client grpcx.TLSFiles) {
	t.Helper()
	dir = t.TempDir()
	ca, err := devca.NewCA("test CA")
	require.NoError(t, err)
	return dir, bundle(t, ca, filepath.Join(dir, "server"), "spiffe://payroll/coordinator"),
		bundle(t, ca, filepath.Join(dir, "client"), "spiffe://payroll/ops")
}

func bundle(t *testing.T, ca *devca.CA, dir, identity string) grpcx.TLSFiles {
	t.Helper()
	issued, err := ca.Issue(devca.Leaf{URIs: []string{identity}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	require.NoError(t, err)
	require.NoError(t, ca.WriteBundle(dir, issued))
	cert, key, caFile := devca.Paths(dir)
	return grpcx.TLSFiles{Cert: cert, Key: key, CA: caFile}
}

func serveSecure(t *testing.T, s grpcx.Security) string {
	t.Helper()
	opts, err := s.ServerOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	return serve(t, opts...)
}

func dialFiles(t *testing.T, addr string, files grpcx.TLSFiles) *grpc.ClientConn {
	t.Helper()
	conn, err := files.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func statusCode(err error) codes.Code { return status.Code(err) }

// TestTLSServerNameIsTheNameChecked dials a server whose certificate names
// localhost and 127.0.0.1 at 127.0.0.1: WithTLSServerName's name, not the host
// dialled, is checked in the certificate.
func TestTLSServerNameIsTheNameChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := devca.NewCA("test CA")
	require.NoError(t, err)
	issued, err := ca.Issue(devca.Leaf{URIs: []string{"spiffe://payroll/coordinator"}, DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	require.NoError(t, err)
	require.NoError(t, ca.WriteBundle(filepath.Join(dir, "server"), issued))
	cert, key, caFile := devca.Paths(filepath.Join(dir, "server"))
	addr := serveSecure(t, grpcx.Security{TLS: grpcx.TLSFiles{Cert: cert, Key: key, CA: caFile}})
	client := bundle(t, ca, filepath.Join(dir, "client"), "spiffe://payroll/ops")

	for name, wantOK := range map[string]bool{"localhost": true, "coordinator.elsewhere.example": false} {
		conn, err := client.Dial(addr, grpcx.WithTLSServerName(name))
		require.NoError(t, err)
		_, err = check(t, conn)
		_ = conn.Close()
		if wantOK {
			require.NoError(t, err, "server name %s", name)
		} else {
			require.Equal(t, codes.Unavailable, statusCode(err), "server name %s: %v", name, err)
			require.Contains(t, err.Error(), name, "the handshake names the name it checked")
		}
	}
}

// TestPeerIdentityIsTheIdentityChecked dials a server whose certificate names
// spiffe://payroll/worker by IP (no name in it): WithPeerIdentity's identity is
// what is checked, as the coordinator checks its workers (WORKER_IDENTITY);
// another identity of the same CA is refused naming both.
func TestPeerIdentityIsTheIdentityChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := devca.NewCA("test CA")
	require.NoError(t, err)
	server := bundle(t, ca, filepath.Join(dir, "server"), "spiffe://payroll/worker")
	addr := serveSecure(t, grpcx.Security{TLS: server})
	client := bundle(t, ca, filepath.Join(dir, "client"), "spiffe://payroll/coordinator")
	ids := grpcx.IdentityPolicy{TrustDomain: "payroll"}

	for id, wantOK := range map[string]bool{"spiffe://payroll/worker": true, "spiffe://payroll/app": false} {
		conn, err := client.Dial(addr, grpcx.WithPeerIdentity(ids, id))
		require.NoError(t, err)
		_, err = check(t, conn)
		_ = conn.Close()
		if wantOK {
			require.NoError(t, err, "peer identity %s", id)
		} else {
			require.Equal(t, codes.Unavailable, statusCode(err), "peer identity %s: %v", id, err)
			require.Contains(t, err.Error(), "spiffe://payroll/worker", "the handshake names the identity it found")
		}
	}
}
