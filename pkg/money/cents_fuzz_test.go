package money_test

import (
	"errors"
	"math/big"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
)

// amountSyntax is what Parse accepts, written independently of it: an optional
// sign, then digits with at most two decimals, or only the decimals.
var amountSyntax = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]{1,2})?|\.[0-9]{1,2})$`)

// FuzzParse checks Parse against a reference built on the grammar above and
// math/big: every amount in the grammar that fits numeric(12,2) parses to its exact
// value, one that does not fit is ErrOutOfRange, anything else is refused, and what
// parses formats back to text that parses to the same cents.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"0", "12", "12.5", "12.05", "-0.01", "+3.10", ".75", "-.5", "9999999999.99", "-9999999999.99",
		"10000000000", "10000000000.00", "0000000000009999999999.99", "99999999999", "", "-", "+", ".", "1.",
		"1.234", "1,5", "1e3", "--1", "+-1", "-+1", " 1", "1 ", "١٢", "0x10", "9223372036854775807",
		"-9223372036854775808", "00", "-0", "-0.00", "1.-1", "1..1",
	} {
		f.Add(seed)
	}
	max := big.NewInt(int64(money.MaxNumeric))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := money.Parse(s)
		if !amountSyntax.MatchString(s) {
			require.Error(t, err, "%q is not an amount", s)
			return
		}
		want := referenceCents(s)
		if want.CmpAbs(max) > 0 {
			require.ErrorIs(t, err, money.ErrOutOfRange, "%q", s)
			return
		}
		require.NoError(t, err, "%q", s)
		require.Equal(t, want.Int64(), int64(got), "%q", s)
		require.True(t, got.Fits())
		again, err := money.Parse(got.String())
		require.NoError(t, err, "reparsing %q", got.String())
		require.Equal(t, got, again)
	})
}

// referenceCents is the value of an amount in the grammar, in cents, with math/big.
func referenceCents(s string) *big.Int {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		// big.Rat does not take a bare fraction with a sign and no digits
		// before the point ("-.5"); the grammar does.
		sign := ""
		if s[0] == '+' || s[0] == '-' {
			sign, s = s[:1], s[1:]
		}
		r, ok = new(big.Rat).SetString(sign + "0" + s)
		if !ok {
			panic("reference cannot read " + s)
		}
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() {
		panic("more than two decimals in " + s)
	}
	return r.Num()
}

// FuzzFromNumeric checks FromNumeric, which pgx uses to scan numeric columns, against
// math/big on any coefficient and exponent: an exact amount in cents that fits is
// returned, anything else is an error, and the answer comes at once whatever the
// exponent.
func FuzzFromNumeric(f *testing.F) {
	f.Add(int64(123456), int32(-2))
	f.Add(int64(7), int32(0))
	f.Add(int64(3), int32(2))
	f.Add(int64(-12300), int32(-4))
	f.Add(int64(1), int32(-3))
	f.Add(int64(1), int32(10))
	f.Add(int64(0), int32(-2147483648))
	f.Add(int64(1), int32(2147483647))
	f.Add(int64(999999999999), int32(-2))
	f.Add(int64(-9223372036854775808), int32(-17))
	max := big.NewRat(int64(money.MaxNumeric), 1)
	f.Fuzz(func(t *testing.T, coef int64, exp int32) {
		n := pgtype.Numeric{Int: big.NewInt(coef), Exp: exp, Valid: true}
		got, err := money.FromNumeric(n)

		// The reference: coef·10^(exp+2) as a rational, computed only when the
		// exponent is small enough to hold; beyond it the amount is either
		// zero, out of range, or has more than two decimals.
		var want *big.Rat
		switch e := int64(exp) + 2; {
		case coef == 0:
			want = new(big.Rat)
		case e > 40:
			require.ErrorIs(t, err, money.ErrOutOfRange)
			return
		case e < -40:
			require.Error(t, err, "coef %d exp %d has more than two decimals", coef, exp)
			return
		default:
			want = new(big.Rat).SetInt64(coef)
			p := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(abs(e)), nil))
			if e >= 0 {
				want.Mul(want, p)
			} else {
				want.Quo(want, p)
			}
		}
		switch {
		case !want.IsInt():
			require.Error(t, err, "coef %d exp %d has more than two decimals", coef, exp)
			require.False(t, errors.Is(err, money.ErrOutOfRange))
		case new(big.Rat).Abs(want).Cmp(max) > 0:
			require.ErrorIs(t, err, money.ErrOutOfRange, "coef %d exp %d", coef, exp)
		default:
			require.NoError(t, err, "coef %d exp %d", coef, exp)
			require.Equal(t, want.Num().Int64(), int64(got))
		}
	})
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
