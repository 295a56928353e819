package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestPruneLedger(t *testing.T) {
	t.Parallel()
	const retention = 90 * 24 * time.Hour

	// backdate makes a run look started, and ended if it has, 100 days ago.
	backdate := func(t *testing.T, q store.Querier, runID int64) {
		t.Helper()
		_, err := q.Exec(t.Context(), `UPDATE consolidation_run SET started_at = now() - interval '100 days',
			finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE now() - interval '100 days' END WHERE id = $1`, runID)
		require.NoError(t, err)
	}
	// rowsOf counts a run's rows in the tables a pass prunes, and its run row.
	rowsOf := func(t *testing.T, q store.Querier, runID int64) [5]int {
		t.Helper()
		var n [5]int
		for i, table := range []string{"consolidation_chunk_attempt", "consolidation_chunk",
			"consolidation_previous_chunk", "consolidation_previous_result"} {
			require.NoError(t, q.QueryRow(t.Context(), "SELECT count(*) FROM "+table+" WHERE run_id = $1", runID).Scan(&n[i]))
		}
		require.NoError(t, q.QueryRow(t.Context(), "SELECT count(*) FROM consolidation_run WHERE id = $1", runID).Scan(&n[4]))
		return n
	}

	t.Run("PrunesOldEndedRunsAndNothingElse", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		// Closing 7: two runs that ended 100 days ago, then one still running
		// (started 100 days ago too).
		old1 := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, old1, 0)
		dispatch(t, pool, old1, 1)
		finish(t, pool, old1, domain.EstadoCancelada, true)
		// Saved rows left behind, as AbortRun leaves them for an operator.
		_, err := pool.Exec(t.Context(), `INSERT INTO consolidation_previous_result (run_id, employee_id, employee, concepts)
			VALUES ($1, 1, '{}', '[]'), ($1, 2, '{}', '[]'), ($1, 3, '{}', '[]')`, old1)
		require.NoError(t, err)
		_, err = pool.Exec(t.Context(), `INSERT INTO consolidation_previous_chunk (run_id, chunk_index, employees, concepts)
			VALUES ($1, 0, '[]', '[]'), ($1, 1, '[]', '[]')`, old1)
		require.NoError(t, err)
		backdate(t, pool, old1)
		old2 := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, old2, 0)
		finish(t, pool, old2, domain.EstadoCancelada, true)
		backdate(t, pool, old2)
		running := newRun(t, pool, twoChunks)
		dispatch(t, pool, running, 0)
		backdate(t, pool, running)
		// Closing 8: a run that ended now, then its latest run, ended 100 days ago.
		recent := newRunOf(t, pool, 8, twoChunks)
		finish(t, pool, recent, domain.EstadoCancelada, false)
		latest := newRunOf(t, pool, 8, twoChunks)
		finish(t, pool, latest, domain.EstadoCancelada, false)
		backdate(t, pool, latest)
		kept := map[int64][5]int{}
		for _, id := range []int64{running, recent, latest} {
			kept[id] = rowsOf(t, pool, id)
		}
		require.Equal(t, [5]int{2, 2, 2, 3, 1}, rowsOf(t, pool, old1))

		// Batches of one row: every table needs several.
		res, err := store.PruneLedger(t.Context(), pool, store.PruneParams{
			FinishedBefore: time.Now().Add(-retention), Batch: 1, MaxRuns: 10})
		require.NoError(t, err)
		require.Equal(t, []int64{old1, old2}, res.Runs)
		require.Equal(t, map[string]int64{"consolidation_chunk_attempt": 3, "consolidation_chunk": 4,
			"consolidation_previous_chunk": 2, "consolidation_previous_result": 3}, res.Rows)
		for _, id := range []int64{old1, old2} {
			require.Equal(t, [5]int{0, 0, 0, 0, 1}, rowsOf(t, pool, id), "pruned run %d keeps its run row only", id)
		}
		for id, rows := range kept {
			require.Equal(t, rows, rowsOf(t, pool, id), "run %d untouched", id)
		}

		// A second pass finds nothing.
		res, err = store.PruneLedger(t.Context(), pool, store.PruneParams{
			FinishedBefore: time.Now().Add(-retention), Batch: 100, MaxRuns: 10})
		require.NoError(t, err)
		require.Empty(t, res.Runs)
	})

	t.Run("StopsWhenAnotherSessionPrunes", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		old := newRun(t, pool, twoChunks)
		finish(t, pool, old, domain.EstadoCancelada, false)
		backdate(t, pool, old)
		newRun(t, pool, twoChunks)

		tx, err := pool.Begin(t.Context())
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(t.Context()) })
		var locked bool
		require.NoError(t, tx.QueryRow(t.Context(), "SELECT pg_try_advisory_xact_lock($1)", int64(0x636f6e736f6c70)).Scan(&locked))
		require.True(t, locked)

		res, err := store.PruneLedger(t.Context(), pool, store.PruneParams{
			FinishedBefore: time.Now().Add(-retention), Batch: 100, MaxRuns: 10})
		require.ErrorIs(t, err, store.ErrPruneBusy)
		require.Empty(t, res.Runs)
		require.Equal(t, 2, countRows(t, pool, "SELECT count(*) FROM consolidation_chunk WHERE run_id = $1", old))

		require.NoError(t, tx.Rollback(t.Context()))
		res, err = store.PruneLedger(t.Context(), pool, store.PruneParams{
			FinishedBefore: time.Now().Add(-retention), Batch: 100, MaxRuns: 10})
		require.NoError(t, err)
		require.Equal(t, []int64{old}, res.Runs)
	})
}
