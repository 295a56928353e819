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
