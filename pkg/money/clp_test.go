package money_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
)

func TestCLP(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   money.Cents
		want string
	}{
		{0, "$ 0,00"},
		{1, "$ 0,01"},
		{10, "$ 0,10"},
		{99, "$ 0,99"},
		{100, "$ 1,00"},
		{99_999, "$ 999,99"},
		{100_000, "$ 1.000,00"},
		{123_456_789, "$ 1.234.567,89"},
		{12_345_678_905, "$ 123.456.789,05"},
		{123_456_789_000, "$ 1.234.567.890,00"},
		{money.MaxNumeric, "$ 9.999.999.999,99"},
		{-1, "-$ 0,01"},
		{-100_050, "-$ 1.000,50"},
		{-123_456_789, "-$ 1.234.567,89"},
		{-money.MaxNumeric, "-$ 9.999.999.999,99"},
		{math.MaxInt64, "$ 92.233.720.368.547.758,07"},
		{math.MinInt64, "-$ 92.233.720.368.547.758,08"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.in.CLP(), "%d cents", int64(tt.in))
	}
}

func TestGrouped(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1.000", 20000: "20.000", 1234567: "1.234.567",
		-1000: "-1.000", math.MinInt64: "-9.223.372.036.854.775.808"} {
		if got := money.Grouped(n); got != want {
			t.Errorf("Grouped(%d) = %q, want %q", n, got, want)
		}
	}
}
