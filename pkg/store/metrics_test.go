package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestGetMetrics(t *testing.T) {
	t.Parallel()

	t.Run("NotFoundBeforeAnyRunEnded", func(t *testing.T) {
		t.Parallel()
		pool, _ := newLedger(t)
		_, err := store.GetMetrics(t.Context(), pool, 7)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("ReadsWhatFinishRunWrote", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		// Two workers: chunk 0 took 2 s (1 s of CPU, 64 MiB), chunk 1 took 4 s (1 s, 128 MiB).
		for index, stats := range []store.ChunkStats{
			testStats,
			{Worker: "worker-b", DurationSeconds: 4, CPUSeconds: 1, PeakRSSBytes: 128 << 20},
		} {
			c := twoChunks[index]
			token := dispatch(t, pool, runID, index)
			_, _, err := store.CommitChunk(t.Context(), pool, runID, index, token, 7,
				consolidated(t, pool, 7, c.FirstID, c.LastID), stats, nil)
			require.NoError(t, err)
		}
		finish(t, pool, runID, domain.EstadoConsolidados, false)

		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Positive(t, m.TiempoTotal)
		require.InDelta(t, 3/m.TiempoTotal, m.ThroughputEmpleadosSec, 1e-9)
		require.InDelta(t, 12/m.TiempoTotal, m.ThroughputRegistrosSec, 1e-9)
		require.InDelta(t, 100*2/6.0, m.CPUPromedioPercent, 1e-9)
		m.TiempoTotal, m.ThroughputEmpleadosSec, m.ThroughputRegistrosSec, m.CPUPromedioPercent = 0, 0, 0, 0
		require.Equal(t, store.Metrics{
			RunID: runID, TotalEmpleados: 3, ChunksProcesados: 2, ChunksExitosos: 2,
			RegistrosCreados: int64(chunk0Sum.Records + chunk1Sum.Records), TiempoPromedioChunk: 3,
			MemoriaPicoMB: 128, ChunkSizeUtilizado: 2, WorkersUtilizados: 2, VersionAlgoritmo: store.AlgorithmVersion(),
		}, m)
	})
	t.Run("RemovedRowsCountAsNoneWritten", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		finish(t, pool, runID, domain.EstadoError, true)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Zero(t, m.TotalEmpleados)
		require.Zero(t, m.RegistrosCreados)
		require.Equal(t, 1, m.ChunksExitosos, "the chunk did succeed; its rows went with the run")
		require.Equal(t, 1, m.ChunksProcesados, "the chunk never tried was cancelled by the run's end, not processed")
	})
	t.Run("EmptyRunHasARowToo", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		runID := newRun(t, pool, nil)
		finish(t, pool, runID, domain.EstadoConsolidados, false)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, runID, m.RunID)
		require.Zero(t, m.ChunksProcesados)
		require.Zero(t, m.WorkersUtilizados)
	})
}
