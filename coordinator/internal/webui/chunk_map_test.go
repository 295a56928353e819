package webui

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestBuildChunkMap(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { t := now.Add(-ago); return &t }
	parent := 1
	done := func(i int, secs float64) store.ChunkCell {
		return store.ChunkCell{Index: i, Status: domain.ChunkSucceeded, Employees: 150, Attempts: 1, Worker: "w1", DurationSeconds: secs}
	}
	t.Run("RunningFarPastTheMedianIsAStraggler", func(t *testing.T) {
		t.Parallel()
		m := buildChunkMap([]store.ChunkCell{done(0, 2), done(2, 3), done(3, 4),
			{Index: 4, Status: domain.ChunkRunning, DispatchedAt: at(20 * time.Second), Attempts: 1},
			{Index: 5, Status: domain.ChunkRunning, DispatchedAt: at(5 * time.Second), Attempts: 1},
			{Index: 6, Status: domain.ChunkPending},
		}, now)
		require.Equal(t, 3*time.Second, m.Median)
		require.Equal(t, 1, m.Stragglers)
		require.True(t, m.Cells[3].Straggler)
		require.False(t, m.Cells[4].Straggler, "5 s is under 3 × 3 s")
		require.Contains(t, m.Cells[3].Title, "rezagado")
		require.Equal(t, []string{m.Cells[3].Title}, m.StragglerTitles)
		require.Equal(t, statusCount{domain.ChunkSucceeded, "exitoso", 3}, m.Counts[0])
	})
	t.Run("TooFewChunksNoMedian", func(t *testing.T) {
		t.Parallel()
		m := buildChunkMap([]store.ChunkCell{done(0, 1), done(1, 100)}, now)
		require.Zero(t, m.Median)
		require.Zero(t, m.Stragglers)
	})
	t.Run("FastRunNotJudgedOnNoise", func(t *testing.T) {
		t.Parallel()
		m := buildChunkMap([]store.ChunkCell{done(0, 0.1), done(1, 0.1), done(2, 0.1), done(3, 1.5)}, now)
		require.Zero(t, m.Stragglers, "under the floor of 2 s")
	})
	t.Run("SplitHalvesShown", func(t *testing.T) {
		t.Parallel()
		m := buildChunkMap([]store.ChunkCell{{Index: 1, Status: domain.ChunkSplit, Attempts: 4},
			{Index: 2, Status: domain.ChunkFailed, ParentIndex: &parent, Employees: 1, Attempts: 4}}, now)
		require.True(t, m.Cells[1].Split)
		require.Contains(t, m.Cells[1].Title, "mitad del chunk 1")
		require.Equal(t, "dividido", m.Cells[0].Label)
	})
}
