package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// TestDashboardReads: a run whose chunk 0 succeeded and chunk 1 is running is
// drawn cell by cell, counted in the throughput of the window it ended in, and
// credited to its worker; a window after it sees none of it.
func TestDashboardReads(t *testing.T) {
	t.Parallel()
	pool, runID := newLedger(t)
	before := time.Now().Add(-time.Minute)
	dispatchAndCommit(t, pool, runID, 0)
	dispatch(t, pool, runID, 1)

	cells, err := store.ChunkMap(t.Context(), pool, runID)
	require.NoError(t, err)
	require.Len(t, cells, 2)
	require.Equal(t, domain.ChunkSucceeded, cells[0].Status)
	require.Equal(t, 1, cells[0].Employees)
	require.Equal(t, 1, cells[0].Attempts)
	require.Equal(t, "worker-a", cells[0].Worker)
	require.Equal(t, testStats.DurationSeconds, cells[0].DurationSeconds)
	require.NotNil(t, cells[0].FinishedAt)
	require.Nil(t, cells[0].ParentIndex)
	require.Equal(t, domain.ChunkRunning, cells[1].Status)
	require.NotNil(t, cells[1].DispatchedAt)
	require.Nil(t, cells[1].FinishedAt)

	points, err := store.Throughput(t.Context(), pool, before, time.Hour)
	require.NoError(t, err)
	require.Len(t, points, 1)
	require.Equal(t, int64(1), points[0].Employees, "only the succeeded chunk counts")

	activity, err := store.WorkersActivity(t.Context(), pool, before)
	require.NoError(t, err)
	require.Len(t, activity, 1)
	require.Equal(t, "worker-a", activity[0].Worker)
	require.Equal(t, 1, activity[0].ChunksCommitted)
	require.Zero(t, activity[0].AttemptsFailed)
	require.False(t, activity[0].LastSeen.Before(*cells[1].DispatchedAt))
	require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 1, 1, domain.OutcomeTimeout, "deadline"))
	activity, err = store.WorkersActivity(t.Context(), pool, before)
	require.NoError(t, err)
	require.Equal(t, 1, activity[0].AttemptsFailed, "the timed-out attempt")

	later := time.Now().Add(time.Hour)
	points, err = store.Throughput(t.Context(), pool, later, time.Hour)
	require.NoError(t, err)
	require.Empty(t, points)
	activity, err = store.WorkersActivity(t.Context(), pool, later)
	require.NoError(t, err)
	require.Empty(t, activity)
}
