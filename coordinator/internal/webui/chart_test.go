package webui

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestRunSeries(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { t := start.Add(time.Duration(s) * time.Second); return &t }
	s := runSeries([]store.ChunkCell{
		{Status: domain.ChunkSucceeded, Employees: 40, FinishedAt: at(0)},
		{Status: domain.ChunkSucceeded, Employees: 80, FinishedAt: at(39)},
		{Status: domain.ChunkSucceeded, Employees: 10, FinishedAt: at(45)}, // after end: the last interval
		{Status: domain.ChunkFailed, Employees: 1, FinishedAt: at(0)},
		{Status: domain.ChunkRunning, Employees: 5},
	}, start, start.Add(40*time.Second))
	require.Len(t, s.Rates, runBuckets)
	require.InDelta(t, 40, s.Rates[0], 1e-9, "40 employees in 1 s")
	require.InDelta(t, 90, s.Rates[runBuckets-1], 1e-9)
}

func TestWindowSeries(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	s := windowSeries([]store.ThroughputPoint{{Start: since.Add(10 * time.Minute), Employees: 600}},
		since, since.Add(time.Hour), 5*time.Minute)
	require.Len(t, s.Rates, 12)
	require.InDelta(t, 2, s.Rates[2], 1e-9)
	require.Zero(t, s.Rates[0])
}

func TestSVGChart(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	svg := string(series{From: start, To: start.Add(time.Minute), Rates: []float64{0, 30, 70}}.svg("empleados/s <x>"))
	require.True(t, strings.HasPrefix(svg, "<svg"))
	require.Contains(t, svg, `aria-label="empleados/s &lt;x&gt;"`)
	require.Contains(t, svg, ">100<", "the scale tops at the next 1-2-5 step")
	require.Equal(t, 1.0, niceCeil(0))
	require.Equal(t, 5.0, niceCeil(3))
	require.Equal(t, 200.0, niceCeil(101))
}
