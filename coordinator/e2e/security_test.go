package e2e_test

import (
	"context"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/devca"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestMTLS runs a coordinator and two workers on mTLS with the policies of
// launch.DevTLS (docs/security-model.md) and checks who may call what, the audit
// columns, certificate rotation and the health ports, against the real
// processes.
func TestMTLS(t *testing.T) {
	t.Parallel()
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	// Chunk 9 exists only in the run CancelRecordsWhoCancelled starts (ten chunks
	// of ten): it stalls there, so the run is still running when it is cancelled.
	c := newCluster(t, clusterOptions{workers: 2, tls: dev, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=9=20s"}})
	coordAddr, workerAddr := c.coord.Addr, c.workers[0].Addr
	outsider := issue(t, dev, "dashboard", "spiffe://payroll/dashboard")

	var done *consolidationv1.Consolidation
	t.Run("AllowedIdentityConsolidatesEndToEnd", func(t *testing.T) {
		closing := c.generate(100, 31)
		want := expected(t, c.pool, closing)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		done = c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, done.GetStatus(), done.GetError())
		require.Greater(t, done.GetTotalChunks(), int32(1))
		requireResultsEqual(t, c.pool, closing, want)
		require.Equal(t, launch.AppIdentity, done.GetRequestedBy())
		require.Empty(t, done.GetCancelledBy())
		requireLogged(t, c, "coordinator.log", `"msg":"audit"`, `"identity":"`+launch.AppIdentity+`"`,
			`"method":"/consolidation.v1.ConsolidationService/Consolidate"`, `"code":"OK"`)
	})

	t.Run("CancelRecordsWhoCancelled", func(t *testing.T) {
		closing := c.generate(100, 32)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 10})
		require.Equal(t, int32(10), resp.GetTotalChunks())
		runID := resp.GetConsolidationId()
		c.waitFor(runID, time.Minute, "every chunk but the stalled one done", func(r *consolidationv1.Consolidation) bool {
			return r.GetChunksSucceeded() == 9
		})
		ops := consolidationv1.NewConsolidationServiceClient(dialAs(t, coordAddr, dev.Ops))
		cres, err := ops.CancelConsolidation(context.Background(), &consolidationv1.CancelConsolidationRequest{
			Ref: &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: runID}})
		require.NoError(t, err)
		require.Equal(t, domain.EstadoCancelada, domain.Estado(cres.GetConsolidation().GetEstado()))
		got := c.waitEnd(runID, time.Minute)
		require.Equal(t, launch.AppIdentity, got.GetRequestedBy())
		require.Equal(t, launch.OpsIdentity, got.GetCancelledBy())
		requireLogged(t, c, "coordinator.log", `"msg":"audit"`, `"identity":"`+launch.OpsIdentity+`"`,
			`"method":"/consolidation.v1.ConsolidationService/CancelConsolidation"`, `"code":"OK"`)
	})

	t.Run("ReadsOfEmployeeDataAreAudited", func(t *testing.T) {
		ctx := context.Background()
		closing := done.GetClosingId()
		ops := consolidationv1.NewConsolidationServiceClient(dialAs(t, coordAddr, dev.Ops))
		stream, err := ops.ExportConsolidation(ctx, &consolidationv1.ExportConsolidationRequest{ClosingId: closing})
		require.NoError(t, err)
		for {
			if _, err := stream.Recv(); err == io.EOF {
				break
			} else {
				require.NoError(t, err)
			}
		}
		var rut string
		require.NoError(t, c.pool.QueryRow(ctx, "SELECT rut FROM nomina_empleado_cierre WHERE cierre_id = $1 LIMIT 1", closing).Scan(&rut))
		_, err = ops.ExplainEmployee(ctx, &consolidationv1.ExplainEmployeeRequest{ClosingId: closing, Rut: rut})
		require.NoError(t, err)
		_, err = ops.ListConsolidations(ctx, &consolidationv1.ListConsolidationsRequest{ClosingId: closing})
		require.NoError(t, err)
		for method, rows := range map[string]string{"ExportConsolidation": "100", "ExplainEmployee": "1", "ListConsolidations": "1"} {
			requireLogged(t, c, "coordinator.log", `"msg":"audit"`, `"level":"INFO"`, `"identity":"`+launch.OpsIdentity+`"`,
				`"method":"/consolidation.v1.ConsolidationService/`+method+`"`, `"closing_id":`+itoa(closing)+`,`,
				`"rows":`+rows+`,`, `"code":"OK"`)
		}
		b, err := os.ReadFile(filepath.Join(c.logDir, "coordinator.log"))
		require.NoError(t, err)
		require.NotContains(t, string(b), rut, "a RUT in the coordinator's log")
	})

	t.Run("IdentityOutsideThePolicyIsDenied", func(t *testing.T) {
		client := consolidationv1.NewConsolidationServiceClient(dialAs(t, coordAddr, outsider))
		_, err := client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{ClosingId: 1})
		requireCode(t, codes.PermissionDenied, err)
		_, err = client.CancelConsolidation(context.Background(), &consolidationv1.CancelConsolidationRequest{
			Ref: &consolidationv1.CancelConsolidationRequest_ClosingId{ClosingId: 1}})
		requireCode(t, codes.PermissionDenied, err)
		_, err = client.GetConsolidation(context.Background(), runRef(1))
		requireCode(t, codes.PermissionDenied, err)
		requireLogged(t, c, "coordinator.log", `"msg":"audit"`, `"identity":"spiffe://payroll/dashboard"`,
			`"method":"/consolidation.v1.ConsolidationService/Consolidate"`, `"code":"PermissionDenied"`)

		// On a worker only the coordinator may call ProcessChunk: not the payroll
		// application, whose identity the coordinator's policy allows.
		worker := consolidationv1.NewWorkerServiceClient(dialAs(t, workerAddr, dev.App))
		_, err = worker.ProcessChunk(context.Background(), &consolidationv1.ProcessChunkRequest{
			ConsolidationId: done.GetConsolidationId(), ClosingId: done.GetClosingId(), AttemptToken: 1})
		requireCode(t, codes.PermissionDenied, err)
	})

	t.Run("WorkerChecksTheTokenBeforeAnsweringFromTheLedger", func(t *testing.T) {
		// The coordinator's own identity, a succeeded chunk, a token that is not
		// its attempt's: nothing of the chunk is answered.
		worker := consolidationv1.NewWorkerServiceClient(dialAs(t, workerAddr, issue(t, dev, "coordinator-2", launch.CoordinatorIdentity)))
		resp, err := worker.ProcessChunk(context.Background(), &consolidationv1.ProcessChunkRequest{
			ConsolidationId: done.GetConsolidationId(), ClosingId: done.GetClosingId(), ChunkIndex: 0, AttemptToken: 12345})
		requireCode(t, codes.Aborted, err)
		require.Nil(t, resp.GetSummary())
		require.Equal(t, "chunk 0 of consolidation "+itoa(done.GetConsolidationId())+": attempt token is not the current one",
			status.Convert(err).Message())
	})

	t.Run("PlaintextIsRefusedOnTheTLSPort", func(t *testing.T) {
		for _, addr := range []string{coordAddr, workerAddr} {
			conn, err := grpcx.Dial(addr)
			require.NoError(t, err)
			_, err = healthCheck(conn)
			requireCode(t, codes.Unavailable, err)
			require.NoError(t, conn.Close())
		}
	})

	t.Run("CertificatesWithoutExactlyOneIdentityAreRefused", func(t *testing.T) {
		// Signed by the cluster's CA, so only the identity rule refuses them: no
		// URI SAN (a CN that looks like an identity, or a DNS SAN), two URI SANs,
		// a SPIFFE ID of another trust domain. Each handshake fails, on both services.
		for name, leaf := range map[string]devca.Leaf{
			"cn-only":        {CommonName: launch.OpsIdentity},
			"dns-only":       {CommonName: "ops", DNSNames: []string{"localhost", "ops.payroll"}},
			"two-uris":       {CommonName: "ops", URIs: []string{launch.OpsIdentity, launch.AppIdentity}},
			"foreign-domain": {CommonName: "ops", URIs: []string{"spiffe://elsewhere/ops"}},
		} {
			issued, err := dev.CA.Issue(leaf)
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), name)
			require.NoError(t, dev.CA.WriteBundle(dir, issued))
			cert, key, ca := devca.Paths(dir)
			files := grpcx.TLSFiles{Cert: cert, Key: key, CA: ca}
			for _, addr := range []string{coordAddr, workerAddr} {
				_, err := healthCheck(dialAs(t, addr, files))
				requireCode(t, codes.Unavailable, err)
			}
			_, err = consolidationv1.NewConsolidationServiceClient(dialAs(t, coordAddr, files)).GetConsolidation(context.Background(), runRef(1))
			requireCode(t, codes.Unavailable, err)
		}
		_, err := healthCheck(dialAs(t, coordAddr, dev.Ops)) // one SPIFFE ID of the trust domain passes
		require.NoError(t, err)
	})

	t.Run("CertificateOfAnotherCAIsRefused", func(t *testing.T) {
		// The same identity, signed by another CA; the client itself trusts the
		// right CA, so the refusal is the server's.
		other, err := launch.NewDevTLS(t.TempDir())
		require.NoError(t, err)
		foreign := grpcx.TLSFiles{Cert: other.App.Cert, Key: other.App.Key, CA: dev.App.CA}
		for _, addr := range []string{coordAddr, workerAddr} {
			_, err := healthCheck(dialAs(t, addr, foreign))
			requireCode(t, codes.Unavailable, err)
		}
		_, err = healthCheck(dialAs(t, coordAddr, dev.App)) // the cluster's own CA still passes
		require.NoError(t, err)
	})

	t.Run("RotatedCertificateIsServedWithoutRestart", func(t *testing.T) {
		pid := c.coord.Pid()
		before := serverSerial(t, coordAddr, dev.App)
		files, issued, err := dev.Issue("coordinator", launch.CoordinatorIdentity) // same CA, new serial, files swapped
		require.NoError(t, err)
		require.Equal(t, dev.Coordinator, files)
		require.NotEqual(t, 0, before.Cmp(issued.Serial))
		require.Equal(t, 0, issued.Serial.Cmp(serverSerial(t, coordAddr, dev.App)), "a new connection gets the new certificate")
		// And the rotated coordinator still reaches its workers and is served.
		closing := c.generate(30, 33)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, final.GetStatus(), final.GetError())
		require.Equal(t, pid, c.coord.Pid(), "the coordinator was not restarted")
	})

	t.Run("HealthPortServesOnlyHealth", func(t *testing.T) {
		for _, p := range []*launch.Process{c.coord, c.workers[0]} {
			require.NotEmpty(t, p.HealthAddr)
			conn, err := grpcx.Dial(p.HealthAddr) // plaintext, no certificate: as kubelet probes
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close() })
			st, err := healthCheck(conn)
			require.NoError(t, err)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, st)

			_, err = consolidationv1.NewConsolidationServiceClient(conn).Consolidate(context.Background(),
				&consolidationv1.ConsolidateRequest{ClosingId: 1})
			requireCode(t, codes.Unimplemented, err)
			_, err = consolidationv1.NewWorkerServiceClient(conn).ProcessChunk(context.Background(),
				&consolidationv1.ProcessChunkRequest{ConsolidationId: 1, ClosingId: 1, AttemptToken: 1})
			requireCode(t, codes.Unimplemented, err)
			stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
			require.NoError(t, err)
			// io.EOF when the server has ended the stream already; Recv says why.
			if err := stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
				require.ErrorIs(t, err, io.EOF)
			}
			_, err = stream.Recv()
			requireCode(t, codes.Unimplemented, err)
		}
		// Reflection is on the authenticated port, for the identities the policy names.
		stream, err := reflectionpb.NewServerReflectionClient(dialAs(t, coordAddr, dev.Ops)).ServerReflectionInfo(context.Background())
		require.NoError(t, err)
		require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
		resp, err := stream.Recv()
		require.NoError(t, err)
		require.NotEmpty(t, resp.GetListServicesResponse().GetService())
	})
}

// issue writes a certificate for identity signed by dev's CA.
func issue(t *testing.T, dev *launch.DevTLS, name, identity string) grpcx.TLSFiles {
	t.Helper()
	files, _, err := dev.Issue(name, identity)
	require.NoError(t, err)
	return files
}

// dialAs connects to addr presenting files' certificate, until the test ends.
func dialAs(t *testing.T, addr string, files grpcx.TLSFiles) *grpc.ClientConn {
	t.Helper()
	conn, err := files.Dial(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func healthCheck(conn *grpc.ClientConn) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return resp.GetStatus(), err
}

// serverSerial is the serial number of the certificate addr presents to a new
// connection.
func serverSerial(t *testing.T, addr string, files grpcx.TLSFiles) *big.Int {
	t.Helper()
	var p peer.Peer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(dialAs(t, addr, files)).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	require.NoError(t, err)
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	require.True(t, ok, "not a TLS connection")
	return info.State.PeerCertificates[0].SerialNumber
}

func requireCode(t *testing.T, want codes.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, status.Code(err), "%v", err)
}

// requireLogged waits for a line of the named log holding every part.
func requireLogged(t *testing.T, c *cluster, name string, parts ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(c.logDir, name))
		if err != nil {
			return false
		}
	lines:
		for _, line := range strings.Split(string(b), "\n") {
			for _, part := range parts {
				if !strings.Contains(line, part) {
					continue lines
				}
			}
			return true
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "%s has no line with %v", name, parts)
}
