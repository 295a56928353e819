package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestFinishRun(t *testing.T) {
	t.Parallel()

	t.Run("SetsEstadoOnRunAndClosing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		finish(t, pool, runID, domain.EstadoConsolidados, false)
		run := getRun(t, pool, runID)
		require.True(t, run.Finished())
		require.Equal(t, domain.EstadoConsolidados, run.Estado)
		require.Equal(t, domain.EstadoConsolidados, estadoOf(t, pool, 7))
	})
	t.Run("KeepsAnEstadoTheApplicationWroteMidRunAndRecordsIt", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 1)
		// A stale save of the closing by the application.
		_, err := pool.Exec(t.Context(), "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1", 7, domain.EstadoVerificado)
		require.NoError(t, err)

		ended, err := store.EndRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoConsolidados})
		require.NoError(t, err)
		require.Equal(t, store.RunEnded{Finished: true, ClosingID: 7, ClosingEstadoFound: domain.EstadoVerificado}, ended)
		run := getRun(t, pool, runID)
		require.Equal(t, domain.EstadoConsolidados, run.Estado, "the outcome is in the ledger")
		require.Equal(t, domain.EstadoVerificado, run.ClosingEstadoFound)
		require.Equal(t, domain.EstadoVerificado, estadoOf(t, pool, 7), "the application's estado is kept")
		requireRowsOfRun(t, pool, runID, 3, 9)

		again, err := store.EndRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoConsolidados})
		require.NoError(t, err)
		require.Equal(t, store.RunEnded{}, again, "ended once")
	})
	t.Run("RecordsNoConflictWhenTheClosingWasConsolidating", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		ended, err := store.EndAbortedRun(t.Context(), pool, runID, noLease, "permanent")
		require.NoError(t, err)
		require.Equal(t, store.RunEnded{Finished: true, ClosingID: 7}, ended)
		require.Empty(t, getRun(t, pool, runID).ClosingEstadoFound)
		require.Equal(t, domain.EstadoError, estadoOf(t, pool, 7))
	})
	t.Run("ClosesTheAttemptsLeftOpen", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		// Attempt 1 of chunk 0 was left open by a coordinator that died; attempt 2
		// committed. Chunk 1's attempt is in flight when the run is cancelled.
		dispatch(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 0)
		dispatch(t, pool, runID, 1)
		finish(t, pool, runID, domain.EstadoCancelada, true)
		got := attemptsOf(t, pool, runID, 0)
		require.Equal(t, []string{string(domain.OutcomeAbandoned), string(domain.OutcomeCommitted)},
			[]string{got[0].Outcome, got[1].Outcome})
		require.Equal(t, "run ended: consolidacion_cancelada", got[0].Error)
		require.True(t, attemptsOf(t, pool, runID, 1)[0].Finished)
		require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_chunk_attempt WHERE run_id = $1 AND finished_at IS NULL", runID))
	})
	t.Run("ClosesTheLedger", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, append(threeChunks, store.ChunkRange{Index: 3, FirstID: 111, LastID: 120}))
		committed := dispatch(t, pool, runID, 0)
		_, _, err := commitChunk(t, pool, runID, 0, committed)
		require.NoError(t, err)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 1, dispatch(t, pool, runID, 1), "bad data")
		require.NoError(t, err)
		require.True(t, failed)
		dispatch(t, pool, runID, 2) // running; chunk 3 stays pending

		finish(t, pool, runID, domain.EstadoCancelada, true)
		for index, want := range map[int]struct {
			status domain.ChunkStatus
			error  string
		}{
			0: {domain.ChunkSucceeded, ""},
			1: {domain.ChunkFailed, "bad data"},
			2: {domain.ChunkCancelled, "run ended: consolidacion_cancelada"}, // abandoned mid-attempt
			3: {domain.ChunkCancelled, "run ended: consolidacion_cancelada"}, // never tried
		} {
			c := chunkOf(t, pool, runID, index)
			require.Equal(t, want.status, c.Status, "chunk %d", index)
			require.Equal(t, want.error, c.Error, "chunk %d", index)
		}
		require.Zero(t, tokenOf(t, pool, runID, 1))
		require.Zero(t, tokenOf(t, pool, runID, 2))
		require.Equal(t, committed, tokenOf(t, pool, runID, 0), "a committed chunk keeps its token: a repeat is answered from the ledger")

		// The run counts what happened: one chunk failed, two never finished, and
		// the rows chunk 0 wrote were removed, so none is counted as consolidated.
		run := getRun(t, pool, runID)
		require.Equal(t, 1, run.ChunksSucceeded)
		require.Equal(t, 1, run.ChunksFailed)
		require.Equal(t, 2, run.ChunksCancelled)
		require.Equal(t, chunkOf(t, pool, runID, 2).Employees+chunkOf(t, pool, runID, 3).Employees, run.EmployeesCancelled)
		require.True(t, run.RowsRemoved)
		require.Zero(t, run.EmployeesDone)
		require.Zero(t, run.Records)
		require.Equal(t, chunk0Sum.Employees, run.EmployeesRemoved)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, 2, m.ChunksProcesados, "the cancelled chunks were not processed")
		require.Zero(t, m.TotalEmpleados)
	})
	t.Run("RemovesTheRunsRowsWhenAsked", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		writeWithoutRun(t, pool, 8, 201, 201) // closing 8's rows are no business of closing 7's run
		runID := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 1)
		finish(t, pool, runID, domain.EstadoError, true)
		requireRowsOfRun(t, pool, runID, 0, 0)
		require.Zero(t, countRows(t, pool, "SELECT count(*) FROM nomina_concepto_empleado_consolidado c JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id WHERE e.cierre_id = 7"))
		require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = 8"))
	})
	t.Run("KeepsTheRunsRowsOtherwise", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		finish(t, pool, runID, domain.EstadoParcial, false)
		requireRowsOfRun(t, pool, runID, 1, 5)
		run := getRun(t, pool, runID)
		require.False(t, run.RowsRemoved)
		require.Equal(t, chunk0Sum.Employees, run.EmployeesDone, "the rows that remain are counted")
		require.Zero(t, run.EmployeesRemoved)
	})
	t.Run("WritesTheMetricsRow", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		finish(t, pool, runID, domain.EstadoParcial, false)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, runID, m.RunID)
		require.Equal(t, chunk0Sum.Employees, m.TotalEmpleados)
		require.Equal(t, 1, m.ChunksExitosos)
	})
	t.Run("ReplacesTheMetricsRowOfAnEarlierRun", func(t *testing.T) {
		t.Parallel()
		pool, first := newLedger(t)
		dispatchAndCommit(t, pool, first, 0)
		finish(t, pool, first, domain.EstadoParcial, false)
		second := newRun(t, pool, twoChunks)
		finish(t, pool, second, domain.EstadoCancelada, true)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, second, m.RunID)
		require.Zero(t, m.ChunksExitosos)
		require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM nomina_metrica_consolidacion WHERE cierre_id = 7"))
	})
	t.Run("SecondFinishChangesNothing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		finish(t, pool, runID, domain.EstadoParcial, false)
		run, metrics := getRun(t, pool, runID), metricsRow(t, pool, 7)

		finished, err := store.FinishRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoError, Error: "late", RemoveRows: true})
		require.NoError(t, err)
		require.False(t, finished)
		require.Equal(t, run, getRun(t, pool, runID))
		require.Equal(t, domain.EstadoParcial, estadoOf(t, pool, 7))
		requireRowsOfRun(t, pool, runID, 1, 5)
		require.Equal(t, metrics, metricsRow(t, pool, 7))
	})
	t.Run("UnknownRunChangesNothing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		finished, err := store.FinishRun(t.Context(), pool, 42, noLease, store.RunEnd{Estado: domain.EstadoError})
		require.NoError(t, err)
		require.False(t, finished)
	})
	t.Run("LeavesAClosingThatMovedOnAlone", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		// Someone moved the closing away from consolidando_datos by hand.
		_, err := pool.Exec(t.Context(), "UPDATE nomina_cierrenomina SET estado = $1 WHERE id = 7", domain.EstadoConDiscrepancias)
		require.NoError(t, err)
		finish(t, pool, runID, domain.EstadoConsolidados, false)
		require.Equal(t, domain.EstadoConDiscrepancias, estadoOf(t, pool, 7))
		require.Equal(t, domain.EstadoConsolidados, getRun(t, pool, runID).Estado)
	})
}

// metricsRow is the closing's whole metrics row as text, to see that nothing in it
// changed.
func metricsRow(t *testing.T, pool *pgxpool.Pool, closingID int64) string {
	t.Helper()
	var row string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT m::text FROM nomina_metrica_consolidacion m WHERE cierre_id = $1", closingID).Scan(&row))
	return row
}

func TestFullRunEnd(t *testing.T) {
	t.Parallel()

	t.Run("RemovesOtherRunsRowsOfTheClosingOnly", func(t *testing.T) {
		t.Parallel()
		requireEndRemovesOtherRunsRowsOfTheClosingOnly(t, loadClosing(t))
	})
	t.Run("RemovesRowsOfNoRunItDidNotReplace", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		writeWithoutRun(t, pool, 7, 101, 101) // written before the service kept run ids
		runID := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, runID, 1)
		finish(t, pool, runID, domain.EstadoParcial, false)
		require.Equal(t, 2, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado"))
		requireRowsOfRun(t, pool, runID, 2, 4)
		require.Zero(t, orphanConcepts(t, pool))
	})
}

// requireEndRemovesOtherRunsRowsOfTheClosingOnly ends a second full run of closing
// 7 keeping its rows, after a first run kept chunk 0's rows (1 employee, 5
// concepts) and the second committed chunk 1 only (2 employees, 4 concepts),
// beside a row of closing 8 written by no run: only the first run's rows go,
// concepts with their employees.
func requireEndRemovesOtherRunsRowsOfTheClosingOnly(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	writeWithoutRun(t, pool, 8, 201, 201)
	first := newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, first, 0)
	finish(t, pool, first, domain.EstadoParcial, false)
	second := newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, second, 1)
	requireRowsOfRun(t, pool, first, 1, 5) // readable until the second run ends

	finish(t, pool, second, domain.EstadoParcial, false)
	requireRowsOfRun(t, pool, first, 0, 0)
	requireRowsOfRun(t, pool, second, 2, 4)
	require.Zero(t, orphanConcepts(t, pool))
	require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = 8"))
}

func TestAbortRun(t *testing.T) {
	t.Parallel()

	t.Run("EndsTheRunInErrorAndLeavesRowsAndMetricsAlone", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		dispatch(t, pool, runID, 1) // running when the run is aborted
		aborted, err := store.AbortRun(t.Context(), pool, runID, noLease, "finishing the run: database error 42501 insufficient_privilege")
		require.NoError(t, err)
		require.True(t, aborted)
		run := getRun(t, pool, runID)
		require.True(t, run.Finished())
		require.Equal(t, domain.EstadoError, run.Estado)
		require.Equal(t, "finishing the run: database error 42501 insufficient_privilege", run.Error)
		require.Equal(t, domain.EstadoError, estadoOf(t, pool, 7))
		c := chunkOf(t, pool, runID, 1)
		require.Equal(t, domain.ChunkCancelled, c.Status)
		require.Zero(t, tokenOf(t, pool, runID, 1), "no attempt may commit after the abort")
		requireRowsOfRun(t, pool, runID, 1, 5) // what could not be removed stays, and the error says why
		require.Zero(t, countRows(t, pool, "SELECT count(*) FROM nomina_metrica_consolidacion"))
	})
	t.Run("SecondAbortAndLaterFinishChangeNothing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		aborted, err := store.AbortRun(t.Context(), pool, runID, noLease, "first")
		require.NoError(t, err)
		require.True(t, aborted)
		aborted, err = store.AbortRun(t.Context(), pool, runID, noLease, "second")
		require.NoError(t, err)
		require.False(t, aborted)
		finished, err := store.FinishRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoConsolidados})
		require.NoError(t, err)
		require.False(t, finished)
		run := getRun(t, pool, runID)
		require.Equal(t, domain.EstadoError, run.Estado)
		require.Equal(t, "first", run.Error)
	})
}
