package e2e_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestRollingUpdateDuringMonthEnd restarts every worker and then every
// coordinator, one at a time with SIGTERM as Kubernetes does, while a month end
// of 50 closings runs: every closing ends datos_consolidados with the rules'
// rows, no chunk is committed twice, and a coordinator that stops releases its
// run leases as it exits, so the other replica takes its runs without waiting out
// LEASE_TTL (set long here, 30s). The wall time of the month end is reported
// beside one of the same size with no restart (docs/reliability.md).
func TestRollingUpdateDuringMonthEnd(t *testing.T) {
	t.Parallel()
	const closings = 50
	// Three runs driven at once per coordinator (DATABASE_MAX_CONNS 5): the
	// month end queues, so both replicas drive runs while the restarts go on.
	c := newCluster(t, clusterOptions{workers: 3, coordinators: 2, coordEnv: []string{"LEASE_TTL=30s", "DATABASE_MAX_CONNS=5"}})
	sizes := func(i int) int { return 300 + (i*97)%500 }

	monthEnd := func(seed uint64, during func(runs []int64)) (time.Duration, []int64, []int64) {
		var ids, runs []int64
		for i := range closings {
			ids = append(ids, c.generate(sizes(i), seed+uint64(i)))
		}
		start := time.Now()
		for i, id := range ids {
			resp, err := c.clients[i%len(c.clients)].Consolidate(context.Background(),
				&consolidationv1.ConsolidateRequest{ClosingId: id, RequestId: "month-end-" + strconv.FormatInt(id, 10)})
			require.NoError(t, err)
			runs = append(runs, resp.GetConsolidationId())
		}
		during(runs)
		require.Eventually(t, func() bool {
			var open int
			require.NoError(t, c.pool.QueryRow(context.Background(),
				"SELECT count(*) FROM consolidation_run WHERE id = ANY($1) AND finished_at IS NULL", runs).Scan(&open))
			return open == 0
		}, 10*time.Minute, 100*time.Millisecond, "the month end did not end")
		var last time.Time
		require.NoError(t, c.pool.QueryRow(context.Background(),
			"SELECT max(finished_at) FROM consolidation_run WHERE id = ANY($1)", runs).Scan(&last))
		return last.Sub(start), ids, runs
	}

	employees := 0
	for i := range closings {
		employees += sizes(i)
	}
	plain, _, _ := monthEnd(1000, func([]int64) {})
	var takeovers []time.Duration
	rolling, ids, runs := monthEnd(2000, func(runs []int64) {
		for _, w := range c.workers {
			w.Stop() // SIGTERM, waits for the exit
			c.start(w)
			c.waitServing(w)
		}
		for _, p := range c.coords {
			takeovers = append(takeovers, c.rollCoordinator(p, runs))
		}
	})

	for i, id := range ids {
		var estado domain.Estado
		require.NoError(t, c.pool.QueryRow(context.Background(), "SELECT estado FROM consolidation_run WHERE id = $1", runs[i]).Scan(&estado))
		require.Equal(t, domain.EstadoConsolidados, estado, "closing %d", id)
		requireResultsEqual(t, c.pool, id, expected(t, c.pool, id))
	}
	var twice int
	require.NoError(t, c.pool.QueryRow(context.Background(), `SELECT count(*) FROM (
		SELECT run_id, chunk_index FROM consolidation_chunk_attempt WHERE run_id = ANY($1) AND outcome = $2
		GROUP BY 1, 2 HAVING count(*) > 1) d`, runs, domain.OutcomeCommitted).Scan(&twice))
	require.Zero(t, twice, "chunks committed twice")
	t.Logf("month end of %d closings (%d employees): %s with no restart, %s with every worker then every coordinator restarted (%+.1fs); "+
		"runs of a stopped coordinator taken over after %v", closings, employees, plain.Round(100*time.Millisecond),
		rolling.Round(100*time.Millisecond), (rolling - plain).Seconds(), takeovers)
}

// rollCoordinator restarts a coordinator with SIGTERM. When it has exited, none
// of the runs holds a live lease of it (a stopping coordinator releases its
// leases); it returns how long after the SIGTERM every run it drove was driven
// by the other replica, or had ended.
func (c *cluster) rollCoordinator(p *launch.Process, runs []int64) time.Duration {
	c.t.Helper()
	ctx := context.Background()
	owner := fmt.Sprintf("%%-%d-%%", p.Pid()) // engine's replica name: host-pid-random
	// Stopped while it drives runs, so the takeover is measured (unless the
	// month end is over first).
	var held []int64
	require.Eventually(c.t, func() bool {
		rows, err := c.pool.Query(ctx, `SELECT id FROM consolidation_run
			WHERE id = ANY($1) AND finished_at IS NULL AND lease_owner LIKE $2 AND lease_expires_at > now()`, runs, owner)
		require.NoError(c.t, err)
		held, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(c.t, err)
		var open int
		require.NoError(c.t, c.pool.QueryRow(ctx, `SELECT count(*) FROM consolidation_run
			WHERE id = ANY($1) AND finished_at IS NULL`, runs).Scan(&open))
		return len(held) > 0 || open == 0
	}, time.Minute, 10*time.Millisecond, "%s drives none of the month end's runs", p.Name)
	if len(held) == 0 {
		c.t.Logf("the month end was over before %s was stopped", p.Name)
	}
	sigterm := time.Now()
	p.Stop()
	c.t.Logf("%s exited %s after SIGTERM, driving %d runs", p.Name, time.Since(sigterm).Round(10*time.Millisecond), len(held))
	var stillHeld int
	require.NoError(c.t, c.pool.QueryRow(ctx, `SELECT count(*) FROM consolidation_run
		WHERE id = ANY($1) AND finished_at IS NULL AND lease_owner LIKE $2 AND lease_expires_at > now()`,
		runs, owner).Scan(&stillHeld))
	require.Zero(c.t, stillHeld, "%s exited holding run leases", p.Name)
	// Each run it held is driven again (a live lease of another replica) or
	// has ended.
	require.Eventually(c.t, func() bool {
		var orphaned int
		require.NoError(c.t, c.pool.QueryRow(ctx, `SELECT count(*) FROM consolidation_run
			WHERE id = ANY($1) AND finished_at IS NULL
			  AND (lease_owner IS NULL OR lease_owner LIKE $2 OR lease_expires_at <= now())`, held, owner).Scan(&orphaned))
		return orphaned == 0
	}, time.Minute, 10*time.Millisecond, "the runs of %s were not taken over", p.Name)
	takeover := time.Since(sigterm).Round(10 * time.Millisecond)
	c.start(p)
	c.waitServing(p)
	return takeover
}
