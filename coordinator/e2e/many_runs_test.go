package e2e_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestThreeTimesMoreClosingsThanConnections is month end on a small pool: twelve
// closings sent at once to a coordinator whose pool has four connections. Every run
// ends with the rows of the rules, no more runs are driven at once than the pool
// allows, and the small closing sent last does not wait for the largest, sent
// first.
func TestThreeTimesMoreClosingsThanConnections(t *testing.T) {
	t.Parallel()
	const conns = 4
	maxRuns := engine.MaxRunsForPool(conns)
	c := newCluster(t, clusterOptions{workers: 2, coordEnv: []string{"DATABASE_MAX_CONNS=" + itoa(conns)}})

	// The largest closing is cut into one-employee chunks: like a 100,000-employee
	// closing, it has many times more chunks than all the others together.
	type closing struct {
		id        int64
		chunkSize int32
		run       int64
	}
	closings := []closing{{id: c.generate(1500, 201), chunkSize: 1}}
	for i := range 3*conns - 2 {
		closings = append(closings, closing{id: c.generate(300+20*i, uint64(202+i))})
	}
	closings = append(closings, closing{id: c.generate(133, 299)})
	largest, smallest := &closings[0], &closings[len(closings)-1]

	// Watch the bounds while the runs go: runs with chunks in flight, and the
	// coordinator's sessions.
	var watching sync.WaitGroup
	ctx, stopWatching := context.WithCancel(context.Background())
	maxDriven, maxSessions := 0, 0
	watching.Go(func() {
		for ctx.Err() == nil {
			var driven, sessions int
			err := c.pool.QueryRow(ctx, `
				SELECT (SELECT count(DISTINCT run_id) FROM consolidation_chunk WHERE status = $1),
				       (SELECT count(*) FROM pg_stat_activity
				         WHERE application_name = 'consolidation-coordinator' AND datname = current_database())`,
				domain.ChunkRunning).Scan(&driven, &sessions)
			if err == nil {
				maxDriven, maxSessions = max(maxDriven, driven), max(maxSessions, sessions)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	for i := range closings {
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closings[i].id, ChunkSize: closings[i].chunkSize})
		closings[i].run = resp.GetConsolidationId()
	}
	for _, cl := range closings {
		c.requireCleanResult(cl.id, cl.run, nil)
	}
	stopWatching()
	watching.Wait()

	require.Positive(t, maxDriven)
	require.LessOrEqual(t, maxDriven, maxRuns, "runs driven at once")
	require.LessOrEqual(t, maxSessions, conns, "the coordinator's database sessions")

	small := c.waitEnd(smallest.run, time.Minute)
	large := c.waitEnd(largest.run, time.Minute)
	require.True(t, small.GetFinishedAt().AsTime().Before(large.GetFinishedAt().AsTime()),
		"the small closing sent last waited for the largest, sent first")
	var later int
	require.NoError(t, c.pool.QueryRow(context.Background(), `
		SELECT count(*) FROM consolidation_chunk
		 WHERE run_id = $1 AND dispatched_at > (SELECT finished_at FROM consolidation_run WHERE id = $2)`,
		largest.run, smallest.run).Scan(&later))
	t.Logf("%d of the largest closing's %d chunks were dispatched after the small one ended", later, large.GetTotalChunks())
}

// TestSmallRunIsDispatchedBeforeALargeOne: a large closing occupies every worker
// slot with many chunks to go; a small closing started then has its chunks
// dispatched before any more of the large one's (docs/architecture.md, "Many runs
// at once": the smallest run waiting gets the next slot) and ends while the large
// one still has chunks to dispatch.
func TestSmallRunIsDispatchedBeforeALargeOne(t *testing.T) {
	t.Parallel()
	const slots = 2 // one worker, the coordinator's WORKER_MAX_IN_FLIGHT
	c := newCluster(t, clusterOptions{workers: 1, coordEnv: []string{"WORKER_MAX_IN_FLIGHT=" + itoa(slots)}})
	large := c.generate(600, 401)
	small := c.generate(133, 402)

	// One-employee chunks: the large run has hundreds to go while the small one runs.
	largeRun := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: large, ChunkSize: 1}).GetConsolidationId()
	c.waitFor(largeRun, time.Minute, "the large run going", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= 10
	})
	smallRun := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: small, ChunkSize: 5}).GetConsolidationId()
	c.requireCleanResult(small, smallRun, nil)
	c.requireCleanResult(large, largeRun, nil)

	// The large run's dispatches while the small one's were being made: at most
	// the ones whose slots it was given before the small run asked.
	var smallChunks, largeBetween, largeAfter int
	require.NoError(t, c.pool.QueryRow(context.Background(), `
		WITH s AS (SELECT min(started_at) AS first, max(started_at) AS last, count(*) AS n
		             FROM consolidation_chunk_attempt WHERE run_id = $2)
		SELECT s.n,
		       (SELECT count(*) FROM consolidation_chunk_attempt a
		         WHERE a.run_id = $1 AND a.started_at > s.first AND a.started_at < s.last),
		       (SELECT count(*) FROM consolidation_chunk_attempt a
		         WHERE a.run_id = $1 AND a.started_at > (SELECT finished_at FROM consolidation_run WHERE id = $2))
		FROM s`, largeRun, smallRun).Scan(&smallChunks, &largeBetween, &largeAfter))
	t.Logf("small run: %d chunks; large run: %d dispatched among them, %d after the small run ended",
		smallChunks, largeBetween, largeAfter)
	require.Equal(t, 27, smallChunks, "the small run's chunks, each dispatched once")
	require.LessOrEqual(t, largeBetween, slots, "the large run was given slots while the small one waited")
	require.Positive(t, largeAfter, "the small run ended after the large one had dispatched everything")
}

// TestSmallRunOnTheOtherReplicaIsNotTurnedAway: two coordinator replicas share
// one worker; a large closing driven by one of them keeps both of the worker's
// slots busy with many chunks to go, and a small closing is started through the
// other. The small run's calls wait at the worker and get the slots as they free
// up, ahead of the large run's (docs/architecture.md, "Many runs at once": on the
// worker, across replicas), instead of being turned away busy while the large
// run's replica re-fills every slot the moment it frees.
func TestSmallRunOnTheOtherReplicaIsNotTurnedAway(t *testing.T) {
	t.Parallel()
	const slots = 2 // one worker, WORKER_MAX_IN_FLIGHT of both replicas and of the worker
	env := []string{"WORKER_MAX_IN_FLIGHT=" + itoa(slots)}
	c := newCluster(t, clusterOptions{workers: 1, coordinators: 2, coordEnv: env, workerEnv: env})
	large := c.generate(600, 403)
	small := c.generate(133, 404)

	largeRun := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: large, ChunkSize: 1}).GetConsolidationId()
	c.waitFor(largeRun, time.Minute, "the large run going", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= 10
	})
	largeDriver := c.driverOf(largeRun)
	c.client = c.clients[1-largeDriver] // the replica started through drives the run
	smallRun := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: small, ChunkSize: 5}).GetConsolidationId()
	c.requireCleanResult(small, smallRun, nil)
	c.requireCleanResult(large, largeRun, nil)

	var smallChunks, smallBusy, largeAfter int
	require.NoError(t, c.pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM consolidation_chunk WHERE run_id = $2),
		       (SELECT count(*) FROM consolidation_chunk_attempt WHERE run_id = $2 AND outcome = $3),
		       (SELECT count(*) FROM consolidation_chunk_attempt a
		         WHERE a.run_id = $1 AND a.started_at > (SELECT finished_at FROM consolidation_run WHERE id = $2))`,
		largeRun, smallRun, domain.OutcomeBusy).Scan(&smallChunks, &smallBusy, &largeAfter))
	t.Logf("small run: %d chunks, %d attempts turned away busy; large run: %d dispatched after the small run ended",
		smallChunks, smallBusy, largeAfter)
	require.Equal(t, 27, smallChunks)
	// A call waits at most 2 s (server.SlotWait) for a slot that a one-employee
	// chunk frees within milliseconds; turned away, it would sleep in its backoff
	// while the large run's replica took the slot back.
	require.Less(t, smallBusy, smallChunks, "the small run's calls were turned away busy")
	require.Positive(t, largeAfter, "the small run ended after the large one had dispatched everything")
}
