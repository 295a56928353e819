package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

// requireNoRunOf checks that a closing has no run and still has estado.
func requireNoRunOf(t *testing.T, pool *pgxpool.Pool, closingID int64, estado domain.Estado) {
	t.Helper()
	require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closingID))
	require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_chunk"))
	require.Equal(t, estado, estadoOf(t, pool, closingID))
}

func TestStartRun(t *testing.T) {
	t.Parallel()

	t.Run("StoresRunAndPlanAndMovesClosingToConsolidando", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		nr := runOf(7, domain.EstadoVerificado, twoChunks)
		runID, err := store.StartRun(t.Context(), pool, nr)
		require.NoError(t, err)

		run := getRun(t, pool, runID)
		require.Equal(t, int64(7), run.ClosingID)
		require.Equal(t, domain.ModeFull, run.Mode)
		require.Equal(t, domain.PolicySeed, run.Policy)
		require.Equal(t, 2, run.ChunkSize)
		require.Equal(t, domain.EstadoVerificado, run.PreviousEstado)
		require.Equal(t, domain.EstadoConsolidando, run.Estado)
		require.Equal(t, 2, run.TotalChunks)
		require.Equal(t, 3, run.TotalEmployees)
		require.Equal(t, 1, run.UnmatchedNovedades)
		require.True(t, nr.Deadline.Equal(run.Deadline), "deadline %v, stored %v", nr.Deadline, run.Deadline)
		require.False(t, run.Finished())
		require.False(t, run.CancelRequested)

		chunks, err := store.Chunks(t.Context(), pool, runID, 0)
		require.NoError(t, err)
		require.Len(t, chunks, 2)
		for i, c := range chunks {
			require.Equal(t, store.Chunk{RunID: runID, Index: i, FirstID: twoChunks[i].FirstID, LastID: twoChunks[i].LastID,
				Employees: twoChunks[i].Employees, Status: domain.ChunkPending}, c)
		}
		require.Equal(t, domain.EstadoConsolidando, estadoOf(t, pool, 7))
	})
	t.Run("StoresEmptyPlan", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, nil)
		run := getRun(t, pool, runID)
		require.Zero(t, run.TotalChunks)
		require.Zero(t, run.TotalEmployees)
		require.Equal(t, domain.EstadoConsolidando, estadoOf(t, pool, 7))
	})
	t.Run("RefusedWhenEstadoMoved", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, err := store.StartRun(t.Context(), pool, runOf(7, domain.EstadoConDiscrepancias, twoChunks))
		require.ErrorIs(t, err, store.ErrClosingStateChanged)
		requireNoRunOf(t, pool, 7, domain.EstadoVerificado)
	})
	for name, from := range map[string]domain.Estado{
		// The caller checked the estado before the first run moved it: the estado guard refuses.
		"SecondRunRefusedNamingTheFirst": domain.EstadoVerificado,
		// The estado guard passes: the one-unfinished-run index refuses the insert.
		"SecondRunFromConsolidandoRefusedNamingTheFirst": domain.EstadoConsolidando,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, first := newLedger(t)
			_, err := store.StartRun(t.Context(), pool, runOf(7, from, twoChunks))
			var active *store.ActiveRunError
			require.ErrorAs(t, err, &active)
			require.Equal(t, first, active.RunID)
			requireOnlyRun(t, pool, 7, first)
		})
	}
	t.Run("BadPlanWritesNothing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		twice := []store.ChunkRange{twoChunks[0], twoChunks[0]} // the same chunk index twice
		_, err := store.StartRun(t.Context(), pool, runOf(7, domain.EstadoVerificado, twice))
		require.Error(t, err)
		var active *store.ActiveRunError
		require.NotErrorAs(t, err, &active)
		requireNoRunOf(t, pool, 7, domain.EstadoVerificado)
	})
	t.Run("OtherClosingsStartTheirOwnRuns", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		run7 := newRun(t, pool, twoChunks)
		run8 := newRunOf(t, pool, 8, []store.ChunkRange{{Index: 0, FirstID: 201, LastID: 201, Employees: 1}})
		require.NotEqual(t, run7, run8)
		require.Equal(t, domain.EstadoConsolidando, estadoOf(t, pool, 8))
	})
}

// requireOnlyRun checks that runID is the closing's only run, with its plan alone in
// the ledger, and that the closing is consolidating.
func requireOnlyRun(t *testing.T, pool *pgxpool.Pool, closingID, runID int64) {
	t.Helper()
	require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closingID))
	require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_chunk WHERE run_id <> $1", runID))
	require.Equal(t, domain.EstadoConsolidando, estadoOf(t, pool, closingID))
}

func TestActiveRun(t *testing.T) {
	t.Parallel()

	t.Run("FoundWhileUnfinished", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		id, ok, err := store.ActiveRun(t.Context(), pool, 7)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, runID, id)
	})
	for name, setup := range map[string]func(t *testing.T, pool *pgxpool.Pool){
		"NotFoundWithoutRun": func(*testing.T, *pgxpool.Pool) {},
		"NotFoundOnceFinished": func(t *testing.T, pool *pgxpool.Pool) {
			finish(t, pool, newRun(t, pool, twoChunks), domain.EstadoError, true)
		},
		"NotFoundWhileAnotherClosingRuns": func(t *testing.T, pool *pgxpool.Pool) { newRunOf(t, pool, 8, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := loadClosing(t)
			setup(t, pool)
			_, ok, err := store.ActiveRun(t.Context(), pool, 7)
			require.NoError(t, err)
			require.False(t, ok)
		})
	}
}

func TestUnfinishedRuns(t *testing.T) {
	t.Parallel()

	t.Run("NoneWithoutRuns", func(t *testing.T) {
		t.Parallel()
		ids, err := store.UnfinishedRuns(t.Context(), pgtest.NewPool(t))
		require.NoError(t, err)
		require.Empty(t, ids)
	})
	t.Run("ListsUnfinishedRunsOfEveryClosingInOrder", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		done := newRun(t, pool, twoChunks)
		finish(t, pool, done, domain.EstadoConsolidados, false)
		run8 := newRunOf(t, pool, 8, nil)
		run7 := newRun(t, pool, twoChunks)
		runs, err := store.UnfinishedRuns(t.Context(), pool)
		require.NoError(t, err)
		r8, err := store.GetRun(t.Context(), pool, run8)
		require.NoError(t, err)
		r7, err := store.GetRun(t.Context(), pool, run7)
		require.NoError(t, err)
		require.Equal(t, []store.UnfinishedRun{{ID: run8, Employees: r8.TotalEmployees}, {ID: run7, Employees: r7.TotalEmployees}}, runs)
	})
}

func TestLatestRunID(t *testing.T) {
	t.Parallel()

	t.Run("NotFoundWithoutRun", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, err := store.LatestRunID(t.Context(), pool, 7)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("NewestRunOfTheClosing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		first := newRun(t, pool, twoChunks)
		finish(t, pool, first, domain.EstadoError, true)
		second := newRun(t, pool, twoChunks)
		newRunOf(t, pool, 8, nil) // newer, but of another closing
		id, err := store.LatestRunID(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, second, id)
	})
}

func TestGetRun(t *testing.T) {
	t.Parallel()

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		_, err := store.GetRun(t.Context(), pgtest.NewPool(t), 42)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("NothingDoneYet", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		run := getRun(t, pool, newRun(t, pool, twoChunks))
		require.Zero(t, run.ChunksSucceeded)
		require.Zero(t, run.ChunksFailed)
		require.Zero(t, run.EmployeesDone)
		require.Zero(t, run.Records)
	})
	t.Run("CountsAddedUpFromChunks", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, threeChunks)
		dispatchAndCommit(t, pool, runID, 0)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 1, dispatch(t, pool, runID, 1), "boom")
		require.NoError(t, err)
		require.True(t, failed)
		dispatch(t, pool, runID, 2) // running: counted nowhere

		run := getRun(t, pool, runID)
		require.Equal(t, 1, run.ChunksSucceeded)
		require.Equal(t, 1, run.ChunksFailed)
		require.Equal(t, chunk0Sum.Employees, run.EmployeesDone)
		require.Equal(t, int64(chunk0Sum.Records), run.Records)
	})
	t.Run("FinishedRunCarriesItsEnd", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		sum := dispatchAndCommit(t, pool, runID, 0)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 1, dispatch(t, pool, runID, 1), "bad data")
		require.NoError(t, err)
		require.True(t, failed)
		finished, err := store.FinishRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoParcial,
			Error: "chunk 1 failed", Totals: sum, TotalsVerified: true})
		require.NoError(t, err)
		require.True(t, finished)

		run := getRun(t, pool, runID)
		require.True(t, run.Finished())
		require.Equal(t, domain.EstadoParcial, run.Estado)
		require.Equal(t, "chunk 1 failed", run.Error)
		require.Equal(t, sum.TotalHaberes, run.TotalHaberes)
		require.Equal(t, sum.TotalDescuentos, run.TotalDescuentos)
		require.Equal(t, sum.LiquidoPagar, run.LiquidoPagar)
		require.True(t, run.TotalsVerified)
		require.Equal(t, 1, run.ChunksFailed)
	})
}

func TestRequestCancel(t *testing.T) {
	t.Parallel()

	t.Run("SetsCancelAndRevokesUnfinishedTokens", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, threeChunks)
		committed := dispatch(t, pool, runID, 0)
		_, _, err := commitChunk(t, pool, runID, 0, committed)
		require.NoError(t, err)
		dispatch(t, pool, runID, 1) // running; chunk 2 stays pending

		changed, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		require.True(t, changed)
		require.True(t, getRun(t, pool, runID).CancelRequested)
		require.Zero(t, tokenOf(t, pool, runID, 1))
		require.Zero(t, tokenOf(t, pool, runID, 2))
		require.Equal(t, committed, tokenOf(t, pool, runID, 0), "a committed chunk keeps its token")
		require.Equal(t, domain.ChunkRunning, chunkOf(t, pool, runID, 1).Status, "the run's end closes the ledger, not the cancel")
	})
	t.Run("LaterCommitWithTheOldTokenRefused", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		_, _, err = commitChunk(t, pool, runID, 0, token)
		require.ErrorIs(t, err, store.ErrStaleAttempt)
		requireRowsOfRun(t, pool, runID, 0, 0)
	})
	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		var first string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT cancel_requested_at::text FROM consolidation_run WHERE id = $1", runID).Scan(&first))

		changed, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		require.True(t, changed, "the run is still cancelling")
		var second string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT cancel_requested_at::text FROM consolidation_run WHERE id = $1", runID).Scan(&second))
		require.Equal(t, first, second, "the first request's time is kept")
	})
	t.Run("RecordsWhoStartedAndWhoCancelledFirst", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		nr := runOf(7, estadoOf(t, pool, 7), threeChunks)
		nr.RequestedBy = "spiffe://payroll/app"
		runID, err := store.StartRun(t.Context(), pool, nr)
		require.NoError(t, err)
		run := getRun(t, pool, runID)
		require.Equal(t, "spiffe://payroll/app", run.RequestedBy)
		require.Empty(t, run.CancelledBy)

		_, err = store.RequestCancel(t.Context(), pool, runID, "spiffe://payroll/ops")
		require.NoError(t, err)
		_, err = store.RequestCancel(t.Context(), pool, runID, "spiffe://payroll/app")
		require.NoError(t, err)
		require.Equal(t, "spiffe://payroll/ops", getRun(t, pool, runID).CancelledBy, "the first canceller is kept")
	})
	t.Run("WithoutIdentityNothingIsRecorded", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		var requestedBy, cancelledBy *string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT requested_by, cancelled_by FROM consolidation_run WHERE id = $1",
			runID).Scan(&requestedBy, &cancelledBy))
		require.Nil(t, requestedBy)
		require.Nil(t, cancelledBy)
	})
	t.Run("FinishedRunUnchanged", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		finish(t, pool, runID, domain.EstadoConsolidados, false)
		changed, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		require.False(t, changed)
		require.False(t, getRun(t, pool, runID).CancelRequested)
	})
	t.Run("UnknownRunUnchanged", func(t *testing.T) {
		t.Parallel()
		changed, err := store.RequestCancel(t.Context(), pgtest.NewPool(t), 42, "")
		require.NoError(t, err)
		require.False(t, changed)
	})
}

func TestRunByRequest(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	nr := runOf(7, estadoOf(t, pool, 7), twoChunks)
	nr.RequestID = "march-rerun"
	runID, err := store.StartRun(t.Context(), pool, nr)
	require.NoError(t, err)
	require.Equal(t, "march-rerun", getRun(t, pool, runID).RequestID)

	got, ok, err := store.RunByRequest(t.Context(), pool, 7, "march-rerun")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, runID, got)
	for _, miss := range []struct {
		closing int64
		id      string
	}{{7, "other"}, {8, "march-rerun"}} {
		_, ok, err = store.RunByRequest(t.Context(), pool, miss.closing, miss.id)
		require.NoError(t, err)
		require.False(t, ok, "%+v", miss)
	}

	// Once the run has ended, the unique index still refuses a second run with the
	// id; another closing may use it, and a run without one stores none.
	finish(t, pool, runID, domain.EstadoCancelada, true)
	nr.PreviousEstado = domain.EstadoCancelada
	_, err = store.StartRun(t.Context(), pool, nr)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.Code)
	require.Equal(t, domain.EstadoCancelada, estadoOf(t, pool, 7), "the refused start changed nothing")
	other := runOf(8, estadoOf(t, pool, 8), []store.ChunkRange{{Index: 0, FirstID: 201, LastID: 201, Employees: 1}})
	other.RequestID = "march-rerun"
	_, err = store.StartRun(t.Context(), pool, other)
	require.NoError(t, err)
	nr.RequestID = ""
	plain, err := store.StartRun(t.Context(), pool, nr)
	require.NoError(t, err)
	require.Empty(t, getRun(t, pool, plain).RequestID)
}
