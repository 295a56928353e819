package e2e_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// The tests of docs/lifecycle.md#more-than-one-coordinator (more than one coordinator) and of database faults
// the coordinator itself meets. A short lease keeps a take-over within seconds.
const replicaLeaseTTL = "LEASE_TTL=2s"

// runLease is the lease columns of a run.
type runLease struct {
	Owner string
	Epoch int64
}

func (c *cluster) leaseOf(runID int64) runLease {
	c.t.Helper()
	var l runLease
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT coalesce(lease_owner, ''), lease_epoch FROM consolidation_run WHERE id = $1", runID).Scan(&l.Owner, &l.Epoch))
	return l
}

// driverOf waits until one of the coordinator replicas holds the run's lease and
// returns its index (a replica names itself host-pid-suffix in the lease).
func (c *cluster) driverOf(runID int64) int {
	c.t.Helper()
	driver := -1
	require.Eventually(c.t, func() bool {
		owner := c.leaseOf(runID).Owner
		for i, p := range c.coords {
			if strings.Contains(owner, "-"+strconv.Itoa(p.Pid())+"-") {
				driver = i
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "no replica holds the lease of consolidation %d", runID)
	return driver
}

// startRun consolidates a closing in chunks of chunkSize and waits until at least
// chunks of them have succeeded; it returns the run's id.
func (c *cluster) startRun(closing int64, chunkSize int32, chunks int32) int64 {
	c.t.Helper()
	runID := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: chunkSize}).GetConsolidationId()
	c.waitFor(runID, time.Minute, "chunks done", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= chunks
	})
	return runID
}

func TestReplicaKilledWhileDrivingIsTakenOver(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2, coordinators: 2, coordEnv: []string{replicaLeaseTTL}})
	closing := c.generate(6000, 171)
	runID := c.startRun(closing, 150, 10) // a quarter of 40
	driver := c.driverOf(runID)
	survivor := 1 - driver
	before := c.leaseOf(runID)
	c.kill(c.coords[driver])
	c.client = c.clients[survivor]

	// The survivor takes the run over once the dead replica's lease has expired,
	// with the next epoch, and resumes it.
	require.Eventually(t, func() bool {
		l := c.leaseOf(runID)
		return l.Epoch > before.Epoch
	}, 30*time.Second, 50*time.Millisecond, "the surviving replica never took the run over")
	c.requireCleanResult(closing, runID, nil)
	require.Equal(t, before.Epoch+1, c.leaseOf(runID).Epoch, "one take-over, by the survivor")
}

func TestCancelThroughTheReplicaNotDriving(t *testing.T) {
	t.Parallel()
	// Every chunk pauses before committing, so the run is still going when the
	// cancel comes, and attempts wake up after it and must be refused.
	c := newCluster(t, clusterOptions{workers: 2, coordinators: 2, coordEnv: []string{replicaLeaseTTL},
		workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=*=500ms"}})
	closing := c.generate(2000, 172)
	runID := c.startRun(closing, 100, 2)
	driver := c.driverOf(runID)
	before := c.leaseOf(runID)

	cres, err := c.clients[1-driver].CancelConsolidation(context.Background(), &consolidationv1.CancelConsolidationRequest{
		Ref: &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: runID}})
	require.NoError(t, err)
	require.Equal(t, domain.EstadoCancelada, domain.Estado(cres.GetConsolidation().GetEstado()),
		"the cancel's answer is the run's end, whichever replica ended it")
	final := c.waitEnd(runID, time.Minute)
	require.Equal(t, domain.EstadoCancelada, domain.Estado(final.GetEstado()))
	require.Equal(t, domain.EstadoCancelada, c.estado(closing))
	require.Equal(t, before.Epoch, c.leaseOf(runID).Epoch, "the replica driving the run ended it")
	c.requireNoRowsWhile(closing, time.Second) // every attempt held at the cancel (500ms) has woken by then
	c.requireNoRows(closing)
}

func TestPostgresRestartedMidRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2, privatePostgres: true})
	closing := c.generate(5000, 173)
	runID := c.startRun(closing, 150, 3)
	// Down for 3 seconds: every session (the coordinator's and the workers') is
	// terminated, and nobody can connect meanwhile.
	require.NoError(t, c.pgServer.Restart(context.Background(), 3*time.Second))
	c.pool.Reset()
	c.requireCleanResult(closing, runID, nil)
}

func TestCoordinatorSessionsTerminatedMidRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=*=100ms"}})
	closing := c.generate(6000, 174)
	runID := c.startRun(closing, 100, 1)
	rounds := 0
	for ended := 0; rounds < 3; rounds++ {
		// Some chunks end between two terminations.
		require.Eventually(t, func() bool {
			return c.endedChunks(runID) >= ended+2 || c.runEnded(runID)
		}, time.Minute, 20*time.Millisecond, "the run made no progress after its sessions were terminated")
		if c.runEnded(runID) {
			break
		}
		ended = c.endedChunks(runID)
		var killed int
		require.Eventually(t, func() bool {
			require.NoError(t, c.pool.QueryRow(context.Background(), `
				SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = 'consolidation-coordinator' AND datname = current_database()`).Scan(&killed))
			return killed > 0
		}, 30*time.Second, 20*time.Millisecond, "the coordinator has no session to terminate")
	}
	require.Positive(t, rounds, "the run ended before any of its coordinator's sessions was terminated")
	c.requireCleanResult(closing, runID, nil)
}

// runEnded reads from the ledger whether a run has ended.
func (c *cluster) runEnded(runID int64) bool {
	c.t.Helper()
	var ended bool
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT finished_at IS NOT NULL FROM consolidation_run WHERE id = $1", runID).Scan(&ended))
	return ended
}
