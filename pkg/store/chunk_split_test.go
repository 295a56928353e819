package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// oneChunk plans closing 7 as a single chunk of its three employees.
var oneChunk = []store.ChunkRange{{Index: 0, FirstID: 101, LastID: 103, Employees: 3, Weight: 3}}

func split(t *testing.T, pool *pgxpool.Pool, runID int64, index int, token int64, workerDied bool) []store.Chunk {
	t.Helper()
	halves, ok, err := store.SplitChunk(t.Context(), pool, runID, noLease, index, token, "bad data", workerDied)
	require.NoError(t, err)
	require.True(t, ok, "split of chunk %d refused", index)
	require.Len(t, halves, 2)
	return halves
}

func TestSplitChunk(t *testing.T) {
	t.Parallel()

	t.Run("ReplacesTheChunkByHalvesWithExactCounts", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, oneChunk)
		token := dispatch(t, pool, runID, 0)
		halves := split(t, pool, runID, 0, token, false)

		require.Equal(t, []store.Chunk{
			{RunID: runID, Index: 1, FirstID: 101, LastID: 101, Employees: 1, Status: domain.ChunkPending, Split: true},
			{RunID: runID, Index: 2, FirstID: 102, LastID: 103, Employees: 2, Status: domain.ChunkPending, Split: true},
		}, halves)
		for _, h := range halves {
			require.Equal(t, h, chunkOf(t, pool, runID, h.Index), "the ledger holds what SplitChunk returned")
		}
		parent := chunkOf(t, pool, runID, 0)
		require.Equal(t, domain.ChunkSplit, parent.Status)
		require.Equal(t, "bad data", parent.Error)
		require.False(t, parent.Split, "a planned chunk is no half")
		require.Zero(t, tokenOf(t, pool, runID, 0), "the split revokes the chunk's token")
		_, _, err := commitChunk(t, pool, runID, 0, token)
		require.ErrorIs(t, err, store.ErrStaleAttempt, "the split attempt can no longer commit")

		run := getRun(t, pool, runID)
		require.Equal(t, 3, run.TotalChunks)
		require.Equal(t, 1, run.ChunksSplit)
		require.Equal(t, 3, run.TotalEmployees, "a split does not change the run's employees")
		open, err := store.Chunks(t.Context(), pool, runID, 0, domain.ChunkPending, domain.ChunkRunning)
		require.NoError(t, err)
		require.Equal(t, halves, open, "a resumed driver finds the halves")
	})

	t.Run("DownToSingleEmployeesCountedByEmployee", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, oneChunk)
		halves := split(t, pool, runID, 0, dispatch(t, pool, runID, 0), false)
		quarters := split(t, pool, runID, halves[1].Index, dispatch(t, pool, runID, halves[1].Index), false)
		require.Equal(t, []int{3, 4}, []int{quarters[0].Index, quarters[1].Index})
		require.Equal(t, []int64{102, 103}, []int64{quarters[0].FirstID, quarters[1].LastID})
		require.Equal(t, 2, quarters[0].ParentIndex)

		_, ok, err := store.SplitChunk(t.Context(), pool, runID, noLease, 1, dispatch(t, pool, runID, 1), "x", false)
		require.ErrorIs(t, err, store.ErrNotSplittable, "one employee cannot be split")
		require.False(t, ok)
		require.Equal(t, domain.ChunkRunning, chunkOf(t, pool, runID, 1).Status)

		failed, err := store.FailChunkWith(t.Context(), pool, runID, noLease, 1, tokenOf(t, pool, runID, 1),
			store.ChunkFailure{Error: "workers died", WorkerDied: true})
		require.NoError(t, err)
		require.True(t, failed)
		dispatchAndCommit(t, pool, runID, 3)
		dispatchAndCommit(t, pool, runID, 4)

		run := getRun(t, pool, runID)
		require.Equal(t, 5, run.TotalChunks)
		require.Equal(t, 2, run.ChunksSplit)
		require.Equal(t, 2, run.ChunksSucceeded)
		require.Equal(t, 1, run.ChunksFailed)
		require.Equal(t, 2, run.EmployeesDone)
		require.Equal(t, 1, run.EmployeesFailed)
		require.Equal(t, 1, run.EmployeesWorkerDied)

		want := []store.FailedEmployee{{EmployeeID: 101, ChunkIndex: 1, Error: "workers died", WorkerDied: true, RUT: "12.345.678-5"}}
		got, err := store.FailedEmployees(t.Context(), pool, runID, 100, false)
		require.NoError(t, err)
		require.Equal(t, want, got)
		got, err = store.FailedEmployees(t.Context(), pool, runID, 100, true)
		require.NoError(t, err)
		require.Equal(t, want, got)

		// Every chunk has ended: the run may end as decided from the chunks.
		finished, err := store.FinishRun(t.Context(), pool, runID, noLease,
			store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 3 employees failed"})
		require.NoError(t, err)
		require.True(t, finished)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, 5, m.ChunksProcesados, "every ledger chunk, split ones included")
		require.Equal(t, 2, m.ChunksExitosos)
		require.Equal(t, 2, m.TotalEmpleados)
	})

	t.Run("FailedEmployeesOfAWholeFailedChunk", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, oneChunk)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 0, dispatch(t, pool, runID, 0), "gave up")
		require.NoError(t, err)
		require.True(t, failed)
		got, err := store.FailedEmployees(t.Context(), pool, runID, 2, false)
		require.NoError(t, err)
		require.Equal(t, []store.FailedEmployee{{EmployeeID: 101, Error: "gave up", RUT: "12.345.678-5"},
			{EmployeeID: 102, Error: "gave up", RUT: "7654321-6"}}, got)
		got, err = store.FailedEmployees(t.Context(), pool, runID, 100, true)
		require.NoError(t, err)
		require.Empty(t, got)
		require.Equal(t, 3, getRun(t, pool, runID).EmployeesFailed)
	})

	// requireUnchanged runs a refused split and checks nothing moved.
	requireUnchanged := func(t *testing.T, pool *pgxpool.Pool, runID, epoch int64, token int64, wantErr error) {
		t.Helper()
		before, beforeRun := chunkOf(t, pool, runID, 0), getRun(t, pool, runID)
		halves, ok, err := store.SplitChunk(t.Context(), pool, runID, epoch, 0, token, "late", true)
		if wantErr != nil {
			require.ErrorIs(t, err, wantErr)
		} else {
			require.NoError(t, err)
		}
		require.False(t, ok)
		require.Nil(t, halves)
		require.Equal(t, before, chunkOf(t, pool, runID, 0))
		require.Equal(t, beforeRun.TotalChunks, getRun(t, pool, runID).TotalChunks)
		all, err := store.Chunks(t.Context(), pool, runID, 0)
		require.NoError(t, err)
		require.Len(t, all, 1)
	}
	t.Run("RefusedWithAStaleToken", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, oneChunk)
		old := dispatch(t, pool, runID, 0)
		dispatch(t, pool, runID, 0)
		requireUnchanged(t, pool, runID, noLease, old, nil)
	})
	t.Run("RefusedAfterCancel", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, oneChunk)
		token := dispatch(t, pool, runID, 0)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		requireUnchanged(t, pool, runID, noLease, token, nil)
	})
	t.Run("RefusedWhenTheLeaseMovedOn", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, oneChunk)
		token := dispatch(t, pool, runID, 0)
		lease(t, pool, runID, "replica-b") // the epoch moves past noLease
		requireUnchanged(t, pool, runID, noLease, token, store.ErrLeaseLost)
	})
}
