package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestCheckControlTotals(t *testing.T) {
	t.Parallel()

	// twoChunksSum is what both chunks of closing 7 write together.
	twoChunksSum := store.WriteSummary{
		Employees: chunk0Sum.Employees + chunk1Sum.Employees, Records: chunk0Sum.Records + chunk1Sum.Records,
		TotalHaberes:    chunk0Sum.TotalHaberes + chunk1Sum.TotalHaberes,
		TotalDescuentos: chunk0Sum.TotalDescuentos + chunk1Sum.TotalDescuentos,
		LiquidoPagar:    chunk0Sum.LiquidoPagar + chunk1Sum.LiquidoPagar,
	}
	// check adds the totals up in one statement and split in two halves: both
	// must say the same.
	check := func(t *testing.T, pool *pgxpool.Pool, runID int64) store.ControlTotals {
		t.Helper()
		totals, err := store.CheckControlTotals(t.Context(), pool, runID, false)
		require.NoError(t, err)
		split, err := store.CheckControlTotals(t.Context(), pool, runID, true)
		require.NoError(t, err)
		require.Equal(t, totals, split, "the halves do not add up to the whole")
		return totals
	}

	t.Run("AgreeAfterCleanCommits", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 1)
		totals := check(t, pool, runID)
		require.True(t, totals.Agree(), "%+v", totals)
		require.Equal(t, twoChunksSum, totals.Ledger)
	})
	t.Run("AgreeOnNothingBeforeAnyCommit", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatch(t, pool, runID, 0)
		totals := check(t, pool, runID)
		require.True(t, totals.Agree())
		require.Zero(t, totals.Ledger)
	})
	t.Run("OtherRunsRowsNotCounted", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		writeWithoutRun(t, pool, 7, 101, 103) // rows of no run
		runID := newRun(t, pool, []store.ChunkRange{{Index: 0, FirstID: 104, LastID: 110}})
		totals := check(t, pool, runID)
		require.True(t, totals.Agree())
		require.Zero(t, totals.Written)
	})
	t.Run("DisagreeWhenAnAmountIsTampered", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 1)
		_, err := pool.Exec(t.Context(), "UPDATE nomina_empleado_consolidado SET total_haberes = total_haberes + 0.01 WHERE empleado_origen_id = 102")
		require.NoError(t, err)
		totals := check(t, pool, runID)
		require.False(t, totals.Agree())
		require.Equal(t, twoChunksSum, totals.Ledger)
		require.Equal(t, twoChunksSum.TotalHaberes+1, totals.Written.TotalHaberes)
	})
	t.Run("HalvesOfAManyChunkRunAddUpToTheWhole", func(t *testing.T) {
		t.Parallel()
		const employees = 1202
		dbURL, closingID, ids := plansFixture(t, employees, 28)
		pool := pgtest.OpenPool(t, dbURL)
		runID := newRunOf(t, pool, closingID, chunkRanges(ids, 0, 100))
		for i := range 13 {
			dispatchAndCommit(t, pool, runID, i)
		}
		totals := check(t, pool, runID)
		require.True(t, totals.Agree(), "%+v", totals)
		require.Equal(t, employees, totals.Written.Employees)
		// A row changed in each half, either side of the median chunk.
		_, err := pool.Exec(t.Context(), `UPDATE nomina_empleado_consolidado SET total_haberes = total_haberes + 0.01
			WHERE empleado_origen_id = ANY($1)`, []int64{ids[10], ids[1100]})
		require.NoError(t, err)
		totals = check(t, pool, runID)
		require.Equal(t, totals.Ledger.TotalHaberes+2, totals.Written.TotalHaberes)
	})
	t.Run("DisagreeWhenAConceptRowIsMissing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		_, err := pool.Exec(t.Context(), `DELETE FROM nomina_concepto_empleado_consolidado WHERE codigo_concepto = 'DIAS'`)
		require.NoError(t, err)
		totals := check(t, pool, runID)
		require.False(t, totals.Agree())
		require.Equal(t, chunk0Sum.Records-1, totals.Written.Records)
	})
}

func TestClosingTotals(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	writeWithoutRun(t, pool, 8, 201, 201) // closing 8's row is no part of closing 7's totals
	first := newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, first, 0)
	finish(t, pool, first, domain.EstadoParcial, false)
	second := newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, second, 1)

	// Every run's rows count: the first run's chunk 0 and the second's chunk 1.
	got, err := store.ClosingTotals(t.Context(), pool, 7)
	require.NoError(t, err)
	require.Equal(t, store.WriteSummary{Employees: chunk0Sum.Employees + chunk1Sum.Employees,
		TotalHaberes:    chunk0Sum.TotalHaberes + chunk1Sum.TotalHaberes,
		TotalDescuentos: chunk0Sum.TotalDescuentos + chunk1Sum.TotalDescuentos,
		LiquidoPagar:    chunk0Sum.LiquidoPagar + chunk1Sum.LiquidoPagar}, got)

	got, err = store.ClosingTotals(t.Context(), pool, 99)
	require.NoError(t, err)
	require.Zero(t, got, "a closing without rows adds up to nothing")
}
