package progress

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestComputeAndRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	tests := []struct {
		name    string
		in      Snapshot
		now     time.Time
		percent float64
		eta     time.Duration
	}{
		{"NotStarted", Snapshot{TotalChunks: 4}, start, 0, 0},
		{"HalfInFourSeconds", Snapshot{TotalChunks: 4, ChunksDone: 2}, start.Add(4 * time.Second), 50, 4 * time.Second},
		{"OneOfThree", Snapshot{TotalChunks: 3, ChunksDone: 1}, start.Add(3 * time.Second), 33.3, 6 * time.Second},
		{"Done", Snapshot{TotalChunks: 5, ChunksDone: 5}, start.Add(time.Second), 100, 0},
		{"EmptyClosing", Snapshot{}, start, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Compute(tt.in, start, tt.now)
			require.Equal(t, tt.percent, got.Percent)
			require.Equal(t, tt.eta, got.ETA)
			require.Equal(t, tt.now.Sub(start), got.Elapsed)

			back, ok := parseSnapshot(got.fields())
			require.True(t, ok)
			require.Equal(t, got, back, "the progress hash gives back what was written")
		})
	}
}

func TestParseSnapshotMissing(t *testing.T) {
	t.Parallel()
	_, ok := parseSnapshot(map[string]string{})
	require.False(t, ok, "an empty hash (Redis lost it) is not progress")
	_, ok = parseSnapshot(map[string]string{"total_chunks": "3", "chunks_completados": "1"})
	require.False(t, ok, "a partial hash is not progress")
}

func TestProgressFieldsAreTheOnesTheApplicationReads(t *testing.T) {
	t.Parallel()
	f := Snapshot{TotalChunks: 2, ChunksDone: 1, EmployeesDone: 66}.fields()
	for _, k := range []string{"total_chunks", "chunks_completados", "progreso_porcentaje", "empleados_procesados",
		"tiempo_transcurrido", "eta_restante"} {
		require.Contains(t, f, k)
	}
}

func TestDerivedFieldsCarryNoCounter(t *testing.T) {
	t.Parallel()
	f := Snapshot{TotalChunks: 4, ChunksDone: 2, EmployeesDone: 200, TotalEmployees: 400, Percent: 50}.derivedFields()
	require.Len(t, f, 3)
	require.Equal(t, "50.0", f["progreso_porcentaje"])
	for _, counter := range []string{"total_chunks", "chunks_completados", "empleados_procesados", "total_empleados", "registros_creados"} {
		require.NotContains(t, f, counter)
	}
}
