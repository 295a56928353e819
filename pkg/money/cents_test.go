package money_test

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
)

func TestParseAndString(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in   string
		want money.Cents
		text string
	}{
		{"0", 0, "0.00"},
		{"12", 1200, "12.00"},
		{"12.5", 1250, "12.50"},
		{"12.05", 1205, "12.05"},
		{"-0.01", -1, "-0.01"},
		{"+3.10", 310, "3.10"},
		{".75", 75, "0.75"},
		{"9999999999.99", money.MaxNumeric, "9999999999.99"},
		{"-9999999999.99", -money.MaxNumeric, "-9999999999.99"},
		{"0001.10", 110, "1.10"},
	}
	for _, tt := range tests {
		got, err := money.Parse(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
		require.Equal(t, tt.text, got.String())
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()

	for _, in := range []string{"", "-", ".", "1.", "1.234", "1,5", "abc", "1e3", "12.3a", "99999999999.00"} {
		_, err := money.Parse(in)
		require.Error(t, err, in)
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()

	s, err := money.Add(150, -275)
	require.NoError(t, err)
	require.Equal(t, money.Cents(-125), s)

	_, err = money.Add(money.MaxNumeric, 1)
	require.True(t, errors.Is(err, money.ErrOutOfRange))
	_, err = money.Add(-money.MaxNumeric, -1)
	require.True(t, errors.Is(err, money.ErrOutOfRange))
	_, err = money.Add(money.MaxNumeric+5, -10)
	require.True(t, errors.Is(err, money.ErrOutOfRange))
}

func TestNumericConversion(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		n    pgtype.Numeric
		want money.Cents
	}{
		{"ScaleTwo", pgtype.Numeric{Int: big.NewInt(123456), Exp: -2, Valid: true}, 123456},
		{"ScaleZero", pgtype.Numeric{Int: big.NewInt(7), Exp: 0, Valid: true}, 700},
		{"PositiveExponent", pgtype.Numeric{Int: big.NewInt(3), Exp: 2, Valid: true}, 30000},
		{"TrailingZerosBeyondScale", pgtype.Numeric{Int: big.NewInt(-12300), Exp: -4, Valid: true}, -123},
		// Found by FuzzFromNumeric: zero with the smallest exponent took billions
		// of divisions.
		{"ZeroAnyExponent", pgtype.Numeric{Int: big.NewInt(0), Exp: math.MinInt32, Valid: true}, 0},
	}
	for _, tt := range tests {
		got, err := money.FromNumeric(tt.n)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, got, tt.name)
		back, err := got.NumericValue()
		require.NoError(t, err)
		again, err := money.FromNumeric(back)
		require.NoError(t, err)
		require.Equal(t, got, again, tt.name)
	}

	bad := []pgtype.Numeric{
		{},
		{NaN: true, Valid: true},
		{Int: big.NewInt(1), Exp: -3, Valid: true},
		{Int: big.NewInt(1), Exp: 10, Valid: true},
	}
	for _, n := range bad {
		_, err := money.FromNumeric(n)
		require.Error(t, err)
	}
	// Found by FuzzFromNumeric: the largest exponent overflowed int32 in the
	// shift to cents and was reported as "more than two decimals".
	_, err := money.FromNumeric(pgtype.Numeric{Int: big.NewInt(1), Exp: math.MaxInt32, Valid: true})
	require.ErrorIs(t, err, money.ErrOutOfRange)

	_, err = (money.MaxNumeric + 1).NumericValue()
	require.True(t, errors.Is(err, money.ErrOutOfRange))
}
