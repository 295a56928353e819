package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// attrs turns a summary's key/value pairs into a map.
func attrs(t *testing.T, kv []any) map[string]any {
	t.Helper()
	require.Zero(t, len(kv)%2)
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		require.True(t, ok, "key %v", kv[i])
		require.NotContains(t, m, k, "key %s twice", k)
		m[k] = kv[i+1]
	}
	return m
}

func TestRunSummary(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 31, 10, 30, 15, 0, time.UTC)
	tests := []struct {
		name string
		run  store.Run
		want map[string]any
	}{
		{
			name: "AllConsolidated", // the old system's example: 2 chunks, 133 employees in 7.8 s
			run: store.Run{ID: 7, ClosingID: 4, Estado: domain.EstadoConsolidados, TotalChunks: 2, TotalEmployees: 133,
				ChunksSucceeded: 2, EmployeesDone: 133, Records: 3192, StartedAt: start, FinishedAt: start.Add(7800 * time.Millisecond)},
			want: map[string]any{"consolidation_id": int64(7), "closing_id": int64(4), "estado": "datos_consolidados",
				"chunks_ok": 2, "chunks": 2, "chunks_failed": 0, "chunks_split": 0, "chunks_cancelled": 0, "employees": 133, "employees_removed": 0, "employees_total": 133,
				"records": int64(3192), "seconds": 7.8, "employees_per_sec": 17.1},
		},
		{
			name: "PartialAfterASplit", // chunk 1 split in two, one half failed: 3 chunks ended, not 4
			run: store.Run{ID: 8, ClosingID: 4, Estado: domain.EstadoParcial, TotalChunks: 4, TotalEmployees: 200,
				ChunksSucceeded: 2, ChunksFailed: 1, ChunksSplit: 1, EmployeesDone: 150, Records: 1800,
				StartedAt: start, FinishedAt: start.Add(3 * time.Second)},
			want: map[string]any{"consolidation_id": int64(8), "closing_id": int64(4), "estado": "consolidacion_parcial",
				"chunks_ok": 2, "chunks": 3, "chunks_failed": 1, "chunks_split": 1, "chunks_cancelled": 0, "employees": 150, "employees_removed": 0, "employees_total": 200,
				"records": int64(1800), "seconds": 3.0, "employees_per_sec": 50.0},
		},
		{
			name: "CancelledAfterSomeChunks", // rows written then removed: none remain, the rate counts them
			run: store.Run{ID: 10, ClosingID: 6, Estado: domain.EstadoCancelada, TotalChunks: 4, TotalEmployees: 40,
				ChunksSucceeded: 1, ChunksCancelled: 3, RowsRemoved: true, EmployeesRemoved: 10,
				StartedAt: start, FinishedAt: start.Add(2 * time.Second)},
			want: map[string]any{"consolidation_id": int64(10), "closing_id": int64(6), "estado": "consolidacion_cancelada",
				"chunks_ok": 1, "chunks": 4, "chunks_failed": 0, "chunks_split": 0, "chunks_cancelled": 3, "employees": 0,
				"employees_removed": 10, "employees_total": 40, "records": int64(0), "seconds": 2.0, "employees_per_sec": 5.0},
		},
		{
			name: "EndedAsItStarted", // no time passed: no rate rather than a division by zero
			run: store.Run{ID: 9, ClosingID: 5, Estado: domain.EstadoCancelada, TotalChunks: 1, TotalEmployees: 10,
				ChunksCancelled: 1, StartedAt: start, FinishedAt: start},
			want: map[string]any{"consolidation_id": int64(9), "closing_id": int64(5), "estado": "consolidacion_cancelada",
				"chunks_ok": 0, "chunks": 1, "chunks_failed": 0, "chunks_split": 0, "chunks_cancelled": 1, "employees": 0,
				"employees_removed": 0, "employees_total": 10,
				"records": int64(0), "seconds": 0.0, "employees_per_sec": 0.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, attrs(t, runSummary(tt.run)))
		})
	}
}

func TestChunkSummary(t *testing.T) {
	t.Parallel()
	run := store.Run{ID: 7, ClosingID: 4}
	c := store.Chunk{Index: 1, Status: domain.ChunkSucceeded, Employees: 67, Records: 1608, DurationSeconds: 4.00049,
		Attempts: 1, Worker: "worker-1"}
	require.Equal(t, map[string]any{"consolidation_id": int64(7), "closing_id": int64(4), "chunk": 1,
		"status": "succeeded", "employees": 67, "records": 1608, "seconds": 4.0, "attempts": 1, "worker": "worker-1"},
		attrs(t, chunkSummary(run, c)))
}
