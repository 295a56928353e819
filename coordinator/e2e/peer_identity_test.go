package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// An identity of the trust domain, signed by the cluster's CA, that is neither
// the coordinator's nor a worker's: only the SPIFFE ID is wrong.
const impostorIdentity = "spiffe://payroll/dashboard"

// TestServicesCheckEachOthersSPIFFEID runs real processes on mTLS where one
// service's certificate carries a wrong SPIFFE ID (docs/security-model.md): the
// coordinator refuses a worker whose certificate does not name the workers'
// identity, and a worker refuses chunks from a coordinator whose certificate
// does not name the coordinator's.
func TestServicesCheckEachOthersSPIFFEID(t *testing.T) {
	t.Parallel()

	t.Run("CoordinatorRefusesAWorkerWithAnotherID", func(t *testing.T) {
		t.Parallel()
		c, dev := newImpostorCluster(t, "worker")
		closing := c.generate(20, 41)

		// The worker serves (its plaintext health port answers), but no handshake
		// of the coordinator's with it passes: no worker is reachable.
		probe, err := grpcx.Dial(c.workers[0].HealthAddr) // plaintext, as kubelet probes
		require.NoError(t, err)
		t.Cleanup(func() { _ = probe.Close() })
		st, err := healthCheck(probe)
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, st)
		for _, validateOnly := range []bool{true, false} {
			_, err := c.client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{
				ClosingId: closing, ValidateOnly: validateOnly})
			requireCode(t, codes.Unavailable, err)
			require.Contains(t, err.Error(), "no worker is reachable")
		}
		var runs int
		require.NoError(t, c.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closing).Scan(&runs))
		require.Zero(t, runs, "a run started with no worker the coordinator accepts")

		// The same worker process given the workers' identity (a rotation; it
		// serves the new certificate on new handshakes) is accepted.
		dev.Worker = issue(t, dev, "worker", launch.WorkerIdentity)
		var resp *consolidationv1.ConsolidateResponse
		require.Eventually(t, func() bool {
			resp, err = c.client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{ClosingId: closing})
			return err == nil
		}, time.Minute, 200*time.Millisecond, "the worker with the right identity was not accepted: %v", err)
		done := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, done.GetStatus(), done.GetError())
	})

	t.Run("WorkerRefusesACoordinatorWithAnotherID", func(t *testing.T) {
		t.Parallel()
		c, _ := newImpostorCluster(t, "coordinator")
		closing := c.generate(20, 42)

		// The coordinator reaches the worker (its handshake passes: the worker
		// serves any identity of the trust domain), but every chunk it sends is
		// refused by the worker's policy, and the run ends without a row.
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		done := c.waitEnd(resp.GetConsolidationId(), 2*time.Minute)
		require.NotEqual(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, done.GetStatus())
		var rows int
		require.NoError(t, c.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = $1", closing).Scan(&rows))
		require.Zero(t, rows, "a worker wrote rows for a coordinator it does not accept")
		requireLogged(t, c, "worker-1.log", `"method":"/consolidation.v1.WorkerService/ProcessChunk"`,
			`"code":"PermissionDenied"`, impostorIdentity)
	})
}

// newImpostorCluster runs a coordinator and a worker on mTLS where the files of
// one of them (name: "coordinator" or "worker"), in their place, name
// impostorIdentity instead of the service's.
func newImpostorCluster(t *testing.T, name string) (*cluster, *launch.DevTLS) {
	t.Helper()
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	files := map[string]*grpcx.TLSFiles{"coordinator": &dev.Coordinator, "worker": &dev.Worker}[name]
	require.NotNil(t, files, "no service %q", name)
	*files = issue(t, dev, name, impostorIdentity)
	return newCluster(t, clusterOptions{workers: 1, tls: dev}), dev
}
