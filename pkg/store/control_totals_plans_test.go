package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

// A coordinator session that checked the control totals of runs while the
// result tables held a page or two keeps a generic plan made then: it counted
// each employee's concept rows with a scan of the whole concept table, once per
// employee (at 100,000 employees the run's end did not finish in minutes: seen
// in the benchmark, docs/benchmarks.md). CheckControlTotals plans afresh, so the
// count goes through the index. Counted with pg_stat_user_tables: no clock.
func TestControlTotalsPlanOnTheRowsAsTheyAre(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const employees = 1202
	dbURL, closingID, ids := plansFixture(t, employees, 25)
	coord := pgtest.OpenPool(t, oneSession(t, dbURL))
	pool := pgtest.OpenPool(t, dbURL) // the workers' sessions
	// A first chunk of two employees, checked while it is all there is (more
	// than five times: PostgreSQL then keeps a generic plan), then the rest.
	chunks := chunkRanges(ids, 2, 100)
	runID := newRunOf(t, pool, closingID, chunks)
	dispatchAndCommit(t, pool, runID, 0)
	for range 10 {
		_, err := store.CheckControlTotals(ctx, coord, runID)
		require.NoError(t, err)
	}
	for i := 1; i < len(chunks); i++ {
		dispatchAndCommit(t, pool, runID, i)
	}
	// scans flushes both sessions' statistics and reads how many scans of the
	// concept rows they started, whole and through an index.
	scans := func() (seq, idx int64) {
		t.Helper()
		for _, p := range []*pgxpool.Pool{pool, coord} {
			_, err := p.Exec(ctx, "SELECT pg_stat_force_next_flush()")
			require.NoError(t, err)
		}
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'nomina_concepto_empleado_consolidado'").Scan(&seq, &idx))
		return
	}
	s0, i0 := scans()
	totals, err := store.CheckControlTotals(ctx, coord, runID)
	require.NoError(t, err)
	require.True(t, totals.Agree())
	s1, i1 := scans()
	require.Zero(t, s1-s0, "scans of the concept rows in one control totals check over %d employees", employees)
	require.Positive(t, i1-i0, "the concept rows were not counted through the index")
}
