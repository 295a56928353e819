package e2e_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestWorkerRestartedWhileItsSlotsWereBusy: the only worker has both its slots
// held by chunks stalled before their commit, while the coordinator's third slot
// gets busy replies; the worker is SIGKILLed, so calls are refused for a while,
// and started again on the same address without the stall. Busy replies and
// refused calls did nothing on any worker: they must not use up
// CHUNK_MAX_ATTEMPTS (2 here, which each of those series passes), and the run ends
// with every chunk written once.
func TestWorkerRestartedWhileItsSlotsWereBusy(t *testing.T) {
	t.Parallel()
	const maxAttempts = 2
	c := newCluster(t, clusterOptions{workers: 1,
		workerEnv: []string{"WORKER_MAX_IN_FLIGHT=2", "FAULT_HOLD_BEFORE_COMMIT=0=60s,1=60s"},
		coordEnv:  []string{"WORKER_MAX_IN_FLIGHT=3", "CHUNK_MAX_ATTEMPTS=" + itoa(maxAttempts), "CHUNK_BUSY_BUDGET=2m"}})
	worker := c.workers[0]
	closing := c.generate(1200, 81)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	runID := resp.GetConsolidationId()

	// most counts, per outcome, the attempts of the chunk that has the most of them.
	most := func(outcome domain.Outcome) int {
		per := map[int]int{}
		for _, a := range c.attempts(runID) {
			if a.Outcome == outcome {
				per[a.Chunk]++
			}
		}
		n := 0
		for _, k := range per {
			n = max(n, k)
		}
		return n
	}
	// held: an attempt of the chunk has been in flight for a second, far longer
	// than a busy reply takes: it is the worker's, stalled before its commit.
	held := func(chunk int) bool {
		var n int
		require.NoError(t, c.pool.QueryRow(context.Background(), `SELECT count(*) FROM consolidation_chunk_attempt
			WHERE run_id = $1 AND chunk_index = $2 AND finished_at IS NULL AND started_at < now() - interval '1 second'`,
			runID, chunk).Scan(&n))
		return n > 0
	}
	require.Eventually(t, func() bool {
		return held(0) && held(1) && most(domain.OutcomeBusy) > maxAttempts
	}, time.Minute, 20*time.Millisecond, "chunks 0 and 1 never held both slots while a third chunk was turned away")

	c.kill(worker)
	require.Eventually(t, func() bool { return most(domain.OutcomeNeverStarted) > maxAttempts },
		time.Minute, 20*time.Millisecond, "no chunk was dispatched again and again while the worker was down")
	worker.Env = slices.DeleteFunc(slices.Clone(worker.Env), func(v string) bool {
		return strings.HasPrefix(v, "FAULT_HOLD_BEFORE_COMMIT=")
	})
	c.start(worker)
	c.waitServing(worker)

	c.requireCleanResult(closing, runID, nil)
	counted := map[int]int{}
	for _, a := range c.attempts(runID) {
		if a.Outcome != domain.OutcomeBusy && a.Outcome != domain.OutcomeNeverStarted {
			counted[a.Chunk]++
		}
	}
	for chunk, n := range counted {
		require.LessOrEqual(t, n, maxAttempts, "chunk %d: attempts a worker took on", chunk)
	}
	// The held chunks were cut short by the kill, and committed after the restart.
	require.Equal(t, maxAttempts, counted[0], "chunk 0: the held attempt, then its commit")
	require.Equal(t, maxAttempts, counted[1], "chunk 1: the held attempt, then its commit")
}
