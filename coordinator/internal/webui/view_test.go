package webui

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/money"
)

func TestPesos(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cents money.Cents
		want  string
	}{
		{0, "$ 0"},
		{123456700, "$ 1.234.567"},
		{123456789, "$ 1.234.567,89"},
		{-50, "-$ 0,50"},
		{math.MinInt64, "-$ 92.233.720.368.547.758,08"},
	} {
		require.Equal(t, tc.want, pesos(tc.cents), "%d cents", tc.cents)
	}
}

func TestCountAndDecimal(t *testing.T) {
	t.Parallel()
	require.Equal(t, "0", count(0))
	require.Equal(t, "999", count(999))
	require.Equal(t, "100.000", count(100000))
	require.Equal(t, "-1.234.567", count(int64(-1234567)))
	require.Equal(t, "1.234,5", decimal(1234.5, 1))
	require.Equal(t, "-0,5", decimal(-0.5, 1))
	require.Equal(t, "0,0", decimal(-0.01, 1))
	require.Equal(t, "—", decimal(math.NaN(), 1))
	require.Equal(t, "42,0 %", percent(42))
}

func TestDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"},
		{1234 * time.Millisecond, "1,2 s"},
		{3*time.Minute + 7*time.Second, "3 min 07 s"},
		{2*time.Hour + 5*time.Minute, "2 h 05 min"},
	} {
		require.Equal(t, tc.want, duration(tc.d))
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for _, e := range runEstados {
		require.NotEqual(t, string(e), estadoLabel(e), "estado %s has a label", e)
	}
	require.Equal(t, "otro", estadoLabel("otro"))
	require.Equal(t, "dividido", chunkLabel(domain.ChunkSplit))
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", traceID("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	require.Empty(t, traceID(""))
}
