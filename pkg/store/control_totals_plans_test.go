package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
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
	coord, pool, closingID, ids := coordinatorAndWorkers(t, employees, 25)
	// A first chunk of two employees, checked while it is all there is (more
	// than five times: PostgreSQL then keeps a generic plan), then the rest.
	chunks := chunkRanges(ids, 2, 100)
	runID := newRunOf(t, pool, closingID, chunks)
	dispatchAndCommit(t, pool, runID, 0)
	for range 10 {
		for _, split := range []bool{false, true} {
			_, err := store.CheckControlTotals(ctx, coord, runID, split)
			require.NoError(t, err)
		}
	}
	requireGenericPlan(t, coord, "%LEFT JOIN LATERAL (SELECT count(*) AS lines%e.empleado_origen_id <%")
	requireGenericPlan(t, coord, "%LEFT JOIN LATERAL (SELECT count(*) AS lines%e.empleado_origen_id >=%")
	requireGenericPlan(t, coord, "%LEFT JOIN LATERAL (SELECT count(*) AS lines%AND true%")
	for i := 1; i < len(chunks); i++ {
		dispatchAndCommit(t, pool, runID, i)
	}
	// Split first: the one statement's DISCARD PLANS would also drop the halves'
	// kept plans.
	for _, split := range []bool{true, false} {
		s0, i0 := conceptScans(t, pool, coord)
		totals, err := store.CheckControlTotals(ctx, coord, runID, split)
		require.NoError(t, err)
		require.True(t, totals.Agree())
		s1, i1 := conceptScans(t, pool, coord)
		require.Zero(t, s1-s0, "scans of the concept rows in one control totals check over %d employees (split %v)", employees, split)
		require.Positive(t, i1-i0, "the concept rows were not counted through the index (split %v)", split)
	}
}

// The run's end plans afresh too: a coordinator session that ended small runs
// removing their rows, while the result tables held a page or two, then removes
// the rows of a run of 1,200 employees (a failed or cancelled run's end). On a
// kept plan that removal scanned the whole concept table once per employee
// (1,201 scans here).
func TestRunEndPlansOnTheRowsAsTheyAre(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const employees = 1200
	coord, pool, closingID, ids := coordinatorAndWorkers(t, employees, 26)
	for range 7 {
		runID := newRunOf(t, pool, closingID, chunkRanges(ids[:2], 0, 2))
		dispatchAndCommit(t, pool, runID, 0)
		finish(t, coord, runID, domain.EstadoError, true)
	}
	requireGenericPlan(t, coord, "DELETE FROM nomina_concepto_empleado_consolidado c USING%")
	chunks := chunkRanges(ids, 0, 100)
	runID := newRunOf(t, pool, closingID, chunks)
	for i := range chunks {
		dispatchAndCommit(t, pool, runID, i)
	}
	s0, _ := conceptScans(t, pool, coord)
	finish(t, coord, runID, domain.EstadoError, true)
	s1, _ := conceptScans(t, pool, coord)
	require.Zero(t, s1-s0, "scans of the concept rows in one run's end removing %d employees", employees)
	var left int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM nomina_concepto_empleado_consolidado").Scan(&left))
	require.Zero(t, left)
}

// conceptScans flushes the pools' sessions' statistics and reads how many scans
// of the concept rows they started, whole and through an index.
func conceptScans(t *testing.T, pools ...*pgxpool.Pool) (seq, idx int64) {
	t.Helper()
	return tableScans(t, "nomina_concepto_empleado_consolidado", pools...)
}

// tableScans flushes the pools' sessions' statistics and reads how many scans
// of table they started, whole and through an index.
func tableScans(t *testing.T, table string, pools ...*pgxpool.Pool) (seq, idx int64) {
	t.Helper()
	for _, p := range pools {
		_, err := p.Exec(t.Context(), "SELECT pg_stat_force_next_flush()")
		require.NoError(t, err)
	}
	require.NoError(t, pools[0].QueryRow(t.Context(),
		"SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&seq, &idx))
	return seq, idx
}

// coordinatorAndWorkers is plansFixture with a pool of one session, the
// coordinator's that keeps its plans, and one for the workers' commits.
func coordinatorAndWorkers(t *testing.T, employees int, seed uint64) (coord, workers *pgxpool.Pool, closingID int64, ids []int64) {
	t.Helper()
	dbURL, closingID, ids := plansFixture(t, employees, seed)
	return pgtest.OpenPool(t, oneSession(t, dbURL)), pgtest.OpenPool(t, dbURL), closingID, ids
}

// requireGenericPlan requires the session of pool (one session) to have chosen
// a generic plan for a statement like pattern: the state the tests above start
// from, which PostgreSQL reaches on its own after five executions.
func requireGenericPlan(t *testing.T, pool *pgxpool.Pool, pattern string) {
	t.Helper()
	var generic int64
	require.NoError(t, pool.QueryRow(t.Context(),
		"SELECT coalesce(max(generic_plans), 0) FROM pg_prepared_statements WHERE statement LIKE $1", pattern).Scan(&generic))
	require.Positive(t, generic, "no generic plan kept for %q: the test would not see a kept plan", pattern)
}
