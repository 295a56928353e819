package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// threeChunks adds an empty chunk 2 (no libro employee has an id in it) to twoChunks.
var threeChunks = append(twoChunks[:len(twoChunks):len(twoChunks)], store.ChunkRange{Index: 2, FirstID: 104, LastID: 110})

func TestChunks(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	runID := newRun(t, pool, threeChunks)
	dispatchAndCommit(t, pool, runID, 0)
	dispatch(t, pool, runID, 2)
	indexes := func(limit int, statuses ...domain.ChunkStatus) []int {
		chunks, err := store.Chunks(t.Context(), pool, runID, limit, statuses...)
		require.NoError(t, err)
		out := []int{}
		for _, c := range chunks {
			out = append(out, c.Index)
		}
		return out
	}

	t.Run("AllInIndexOrder", func(t *testing.T) {
		require.Equal(t, []int{0, 1, 2}, indexes(0))
	})
	t.Run("OnlyTheGivenStatuses", func(t *testing.T) {
		require.Equal(t, []int{0}, indexes(0, domain.ChunkSucceeded))
		require.Equal(t, []int{1, 2}, indexes(0, domain.ChunkPending, domain.ChunkRunning))
		require.Equal(t, []int{}, indexes(0, domain.ChunkFailed))
	})
	t.Run("AtMostLimit", func(t *testing.T) {
		require.Equal(t, []int{0, 1}, indexes(2))
		require.Equal(t, []int{1}, indexes(1, domain.ChunkPending, domain.ChunkRunning))
	})
	t.Run("NoneOfAnotherRun", func(t *testing.T) {
		chunks, err := store.Chunks(t.Context(), pool, runID+1, 0)
		require.NoError(t, err)
		require.Empty(t, chunks)
	})
}

func TestGetChunk(t *testing.T) {
	t.Parallel()

	t.Run("ReadsTheCommittedSummary", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		require.Equal(t, store.Chunk{
			RunID: runID, Index: 0, FirstID: 101, LastID: 101, Employees: 1, Status: domain.ChunkSucceeded,
			Attempts: 1, Worker: testStats.Worker, Records: chunk0Sum.Records, DurationSeconds: testStats.DurationSeconds,
			CPUSeconds: testStats.CPUSeconds, PeakRSSBytes: testStats.PeakRSSBytes, TotalHaberes: chunk0Sum.TotalHaberes,
			TotalDescuentos: chunk0Sum.TotalDescuentos, LiquidoPagar: chunk0Sum.LiquidoPagar,
		}, chunkOf(t, pool, runID, 0))
	})
	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		_, err := store.GetChunk(t.Context(), pool, runID, 2)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestGetAssignment(t *testing.T) {
	t.Parallel()

	t.Run("ChunkWithItsClosingAndToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 1)
		a, err := store.GetAssignment(t.Context(), pool, runID, 1)
		require.NoError(t, err)
		require.Equal(t, store.Closing{ID: 7, Mes: 3, Anno: 2026, Estado: domain.EstadoConsolidando}, a.Closing)
		require.Equal(t, chunkOf(t, pool, runID, 1), a.Chunk)
		require.Equal(t, token, a.Token)
		var employees int
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT total_employees FROM consolidation_run WHERE id = $1", runID).Scan(&employees))
		require.Positive(t, employees)
		require.Equal(t, employees, a.RunEmployees)
	})
	t.Run("NoTokenBeforeDispatch", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		require.Zero(t, tokenOf(t, pool, newRun(t, pool, twoChunks), 0))
	})
	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, err := store.GetAssignment(t.Context(), pool, newRun(t, pool, twoChunks), 5)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestDispatchChunk(t *testing.T) {
	t.Parallel()

	t.Run("PendingBecomesRunningWithTokenAndAttemptRow", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := newToken()
		attempt, ok, err := store.DispatchChunk(t.Context(), pool, runID, noLease, 0, token, "worker-b")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, 1, attempt)

		requireRunning(t, pool, runID, 0, 1, "worker-b", token)
		require.Equal(t, []attemptRow{{Attempt: 1, Token: token, Worker: "worker-b"}}, attemptsOf(t, pool, runID, 0))
		require.Equal(t, domain.ChunkPending, chunkOf(t, pool, runID, 1).Status, "only the dispatched chunk moves")
	})
	t.Run("RedispatchOfRunningChunkReplacesToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		first := dispatch(t, pool, runID, 0)
		second := newToken()
		attempt, ok, err := store.DispatchChunk(t.Context(), pool, runID, noLease, 0, second, "worker-b")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, 2, attempt)

		requireRunning(t, pool, runID, 0, 2, "worker-b", second)
		require.Equal(t, []attemptRow{
			{Attempt: 1, Token: first, Worker: "worker-a"},
			{Attempt: 2, Token: second, Worker: "worker-b"},
		}, attemptsOf(t, pool, runID, 0))
	})
	t.Run("RefusedForSucceededChunk", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		requireDispatchRefused(t, pool, runID, 0)
	})
	t.Run("RefusedForFailedChunk", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 0, dispatch(t, pool, runID, 0), "bad data")
		require.NoError(t, err)
		require.True(t, failed)
		requireDispatchRefused(t, pool, runID, 0)
	})
	t.Run("RefusedForFinishedRun", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		finish(t, pool, runID, domain.EstadoTimeout, true)
		requireDispatchRefused(t, pool, runID, 0)
	})
	t.Run("RefusedForFinishedRunEvenWithChunkStillPending", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		// FinishRun also closes the ledger; mark the run alone finished, so only the
		// run's own guard stands between the chunk and a dispatch.
		_, err := pool.Exec(t.Context(), "UPDATE consolidation_run SET finished_at = now() WHERE id = $1", runID)
		require.NoError(t, err)
		requireDispatchRefused(t, pool, runID, 0)
	})
	t.Run("RefusedForRunWithCancelRequested", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatch(t, pool, runID, 1)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		requireDispatchRefused(t, pool, runID, 0)
		requireDispatchRefused(t, pool, runID, 1)
	})
	t.Run("RefusedForUnknownChunk", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, ok, err := store.DispatchChunk(t.Context(), pool, newRun(t, pool, twoChunks), noLease, 9, newToken(), "worker-a")
		require.NoError(t, err)
		require.False(t, ok)
	})
}

// requireRunning checks that a chunk is running its attempts-th attempt, on worker,
// with token.
func requireRunning(t *testing.T, pool *pgxpool.Pool, runID int64, index, attempts int, worker string, token int64) {
	t.Helper()
	c := chunkOf(t, pool, runID, index)
	require.Equal(t, domain.ChunkRunning, c.Status)
	require.Equal(t, attempts, c.Attempts)
	require.Equal(t, worker, c.Worker)
	require.Equal(t, token, tokenOf(t, pool, runID, index))
}

// requireDispatchRefused checks that a chunk cannot be dispatched and that the try
// changed nothing: status, attempts, token and attempt rows.
func requireDispatchRefused(t *testing.T, pool *pgxpool.Pool, runID int64, index int) {
	t.Helper()
	before, token, attempts := chunkOf(t, pool, runID, index), tokenOf(t, pool, runID, index), attemptsOf(t, pool, runID, index)
	_, ok, err := store.DispatchChunk(t.Context(), pool, runID, noLease, index, newToken(), "worker-b")
	require.NoError(t, err)
	require.False(t, ok, "dispatch of chunk %d accepted", index)
	require.Equal(t, before, chunkOf(t, pool, runID, index))
	require.Equal(t, token, tokenOf(t, pool, runID, index))
	require.Equal(t, attempts, attemptsOf(t, pool, runID, index))
}

func TestFailChunk(t *testing.T) {
	t.Parallel()

	t.Run("FailsRunningChunkWithCurrentToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 0, dispatch(t, pool, runID, 0), "amount does not fit")
		require.NoError(t, err)
		require.True(t, failed)
		c := chunkOf(t, pool, runID, 0)
		require.Equal(t, domain.ChunkFailed, c.Status)
		require.Equal(t, "amount does not fit", c.Error)
	})
	t.Run("RefusedWithOldToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		old := dispatch(t, pool, runID, 0)
		dispatch(t, pool, runID, 0)
		requireFailRefused(t, pool, runID, 0, old)
	})
	t.Run("RefusedForPendingChunk", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		requireFailRefused(t, pool, runID, 0, 0)
	})
	t.Run("RefusedForSucceededChunkEvenWithItsToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		_, _, err := commitChunk(t, pool, runID, 0, token)
		require.NoError(t, err)
		requireFailRefused(t, pool, runID, 0, token)
	})
	t.Run("RefusedForFailedChunkKeepsFirstError", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 0, token, "first")
		require.NoError(t, err)
		require.True(t, failed)
		requireFailRefused(t, pool, runID, 0, token)
		require.Equal(t, "first", chunkOf(t, pool, runID, 0).Error)
	})
	t.Run("RefusedAfterCancel", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		requireFailRefused(t, pool, runID, 0, token)
	})
}

// requireFailRefused checks that FailChunk with token refuses and leaves the chunk as
// it was.
func requireFailRefused(t *testing.T, pool *pgxpool.Pool, runID int64, index int, token int64) {
	t.Helper()
	before := chunkOf(t, pool, runID, index)
	failed, err := store.FailChunk(t.Context(), pool, runID, noLease, index, token, "late failure")
	require.NoError(t, err)
	require.False(t, failed)
	require.Equal(t, before, chunkOf(t, pool, runID, index))
}

func TestCommitChunk(t *testing.T) {
	t.Parallel()

	t.Run("WritesRowsAndMarksSucceededAndAttemptCommitted", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 1)
		sum, fromLedger, err := commitChunk(t, pool, runID, 1, token)
		require.NoError(t, err)
		require.False(t, fromLedger)
		require.Equal(t, chunk1Sum, sum)

		requireRowsOfRun(t, pool, runID, 2, 4)
		c := chunkOf(t, pool, runID, 1)
		require.Equal(t, domain.ChunkSucceeded, c.Status)
		require.Equal(t, sum.Records, c.Records)
		require.Equal(t, sum.TotalHaberes, c.TotalHaberes)
		require.Equal(t, sum.TotalDescuentos, c.TotalDescuentos)
		require.Equal(t, sum.LiquidoPagar, c.LiquidoPagar)
		require.Equal(t, []attemptRow{{Attempt: 1, Token: token, Worker: "worker-a", Finished: true,
			Outcome: string(domain.OutcomeCommitted)}}, attemptsOf(t, pool, runID, 1))
	})
	t.Run("SameAttemptTwiceAnsweredFromLedger", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		_, _, err := commitChunk(t, pool, runID, 0, token)
		require.NoError(t, err)
		before := chunkOf(t, pool, runID, 0)

		sum, fromLedger, err := commitChunk(t, pool, runID, 0, token)
		require.NoError(t, err)
		require.True(t, fromLedger)
		require.Zero(t, sum, "read the summary with GetChunk")
		requireRowsOfRun(t, pool, runID, 1, 5)
		require.Equal(t, before, chunkOf(t, pool, runID, 0))
	})
	t.Run("RefusedWithOldTokenAfterRedispatch", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		old := dispatch(t, pool, runID, 0)
		current := dispatch(t, pool, runID, 0)
		requireCommitRefused(t, pool, runID, 0, old)
		require.Equal(t, current, tokenOf(t, pool, runID, 0))

		_, _, err := commitChunk(t, pool, runID, 0, current)
		require.NoError(t, err, "the current attempt still commits")
		requireRowsOfRun(t, pool, runID, 1, 5)
	})
	t.Run("RefusedWithOldTokenAfterTheNewAttemptCommitted", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		old := dispatch(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 0)
		requireCommitRefused(t, pool, runID, 0, old)
		requireRowsOfRun(t, pool, runID, 1, 5)
	})
	t.Run("RefusedAfterCancel", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		requireCommitRefused(t, pool, runID, 0, token)
	})
	t.Run("RefusedAfterFinishRun", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		finish(t, pool, runID, domain.EstadoTimeout, true)
		requireCommitRefused(t, pool, runID, 0, token)
	})
	t.Run("RefusedForFailedChunkEvenWithItsToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 0, token, "bad data")
		require.NoError(t, err)
		require.True(t, failed)
		requireCommitRefused(t, pool, runID, 0, token)
	})
	t.Run("RefusedForPendingChunk", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		requireCommitRefused(t, pool, newRun(t, pool, twoChunks), 0, newToken())
	})
	t.Run("UnknownChunkNotFound", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		_, _, err := store.CommitChunk(t.Context(), pool, runID, 5, newToken(), 7, nil, testStats, nil)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("HookRunsOnlyOnceAttemptIsFoundCurrent", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		old := dispatch(t, pool, runID, 0)
		current := dispatch(t, pool, runID, 0)
		recs := consolidated(t, pool, 7, 101, 101)
		calls := 0
		hook := func() { calls++ }
		_, _, err := store.CommitChunk(t.Context(), pool, runID, 0, old, 7, recs, testStats, hook)
		require.ErrorIs(t, err, store.ErrStaleAttempt)
		require.Zero(t, calls)
		_, _, err = store.CommitChunk(t.Context(), pool, runID, 0, current, 7, recs, testStats, hook)
		require.NoError(t, err)
		require.Equal(t, 1, calls)
	})
	t.Run("WriteFailureLeavesChunkRunning", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 1)
		recs := consolidated(t, pool, 7, 102, 103)
		recs = append(recs, recs[0]) // the same RUT twice breaks the closing's unique key
		_, _, err := store.CommitChunk(t.Context(), pool, runID, 1, token, 7, recs, testStats, nil)
		require.Error(t, err)
		require.NotErrorIs(t, err, store.ErrStaleAttempt)
		requireRowsOfRun(t, pool, runID, 0, 0)
		require.Equal(t, domain.ChunkRunning, chunkOf(t, pool, runID, 1).Status)
		require.Equal(t, token, tokenOf(t, pool, runID, 1))
		require.False(t, attemptsOf(t, pool, runID, 1)[0].Finished)
	})
}

// requireCommitRefused checks that committing a chunk with token is refused as stale
// and writes nothing: no rows, the same ledger row, the same attempt rows.
func requireCommitRefused(t *testing.T, pool *pgxpool.Pool, runID int64, index int, token int64) {
	t.Helper()
	before, attempts := chunkOf(t, pool, runID, index), attemptsOf(t, pool, runID, index)
	rows := countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado")
	_, fromLedger, err := commitChunk(t, pool, runID, index, token)
	require.ErrorIs(t, err, store.ErrStaleAttempt)
	require.False(t, fromLedger)
	require.Equal(t, rows, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado"))
	require.Equal(t, before, chunkOf(t, pool, runID, index))
	require.Equal(t, attempts, attemptsOf(t, pool, runID, index))
}
