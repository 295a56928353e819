// Package money holds exact amounts as integer cents and converts them to and from
// PostgreSQL's numeric(12,2), the type of every amount column of the payroll schema.
package money

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// Cents is an exact amount of money in hundredths of a peso.
type Cents int64

// MaxNumeric is the largest magnitude numeric(12,2) holds: 9,999,999,999.99.
const MaxNumeric Cents = 999_999_999_999

// ErrOutOfRange means an amount does not fit numeric(12,2).
var ErrOutOfRange = errors.New("amount does not fit numeric(12,2)")

// Fits reports whether c fits numeric(12,2).
func (c Cents) Fits() bool { return c >= -MaxNumeric && c <= MaxNumeric }

// Add returns a+b, or ErrOutOfRange when the sum leaves numeric(12,2). Both operands
// are expected to fit, so the int64 sum itself cannot overflow.
func Add(a, b Cents) (Cents, error) {
	if !a.Fits() || !b.Fits() {
		return 0, ErrOutOfRange
	}
	s := a + b
	if !s.Fits() {
		return 0, ErrOutOfRange
	}
	return s, nil
}

// String formats c as numeric text with two decimals: "-1234.05".
func (c Cents) String() string {
	sign := ""
	u := uint64(c)
	if c < 0 {
		sign = "-"
		u = uint64(-c)
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// Parse reads numeric text with at most two decimals ("12", "-0.5", "1234.56") exactly.
func Parse(s string) (Cents, error) {
	orig := s
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 2 || hasDot && frac == "" {
		return 0, fmt.Errorf("parsing amount %q: not a number with at most two decimals", orig)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	if whole == "" {
		whole = "0"
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, fmt.Errorf("parsing amount %q: not a number with at most two decimals", orig)
			}
		}
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 10 {
		return 0, fmt.Errorf("parsing amount %q: %w", orig, ErrOutOfRange)
	}
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing amount %q: %w", orig, err)
	}
	if neg {
		n = -n
	}
	return Cents(n), nil
}

// FromNumeric converts a numeric value with at most two decimals to cents. A value
// with a non-zero third decimal, NaN, infinity or outside numeric(12,2) is an error.
func FromNumeric(n pgtype.Numeric) (Cents, error) {
	if !n.Valid {
		return 0, errors.New("converting numeric: NULL")
	}
	if n.NaN || n.InfinityModifier != pgtype.Finite {
		return 0, errors.New("converting numeric: not a finite number")
	}
	if n.Int == nil || n.Int.Sign() == 0 {
		return 0, nil // whatever the exponent
	}
	v := new(big.Int).Set(n.Int)
	// The exponent is widened before the shift to cents (Exp+2 overflows int32
	// at its top), and both loops below are bounded by the number's digits, not
	// by the exponent: a non-zero value ends the first with a remainder once its
	// digits run out, and one with twelve or more zeros to append does not fit.
	exp := int64(n.Exp) + 2 // cents are 10^-2
	for ; exp < 0; exp++ {
		q, r := new(big.Int).QuoRem(v, big.NewInt(10), new(big.Int))
		if r.Sign() != 0 {
			return 0, errors.New("converting numeric: more than two decimals")
		}
		v = q
	}
	if exp >= 12 {
		return 0, ErrOutOfRange
	}
	for ; exp > 0; exp-- {
		v.Mul(v, big.NewInt(10))
	}
	if !v.IsInt64() || !Cents(v.Int64()).Fits() {
		return 0, ErrOutOfRange
	}
	return Cents(v.Int64()), nil
}

// ToNumeric converts c to a numeric with scale 2.
func (c Cents) ToNumeric() pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(int64(c)), Exp: -2, Valid: true}
}

// ScanNumeric lets pgx scan a numeric column straight into Cents.
func (c *Cents) ScanNumeric(n pgtype.Numeric) error {
	v, err := FromNumeric(n)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// NumericValue lets pgx write Cents to a numeric column (including through COPY). It
// refuses an amount outside numeric(12,2) rather than let the database round or fail
// without saying which value.
func (c Cents) NumericValue() (pgtype.Numeric, error) {
	if !c.Fits() {
		return pgtype.Numeric{}, fmt.Errorf("writing %s: %w", c, ErrOutOfRange)
	}
	return c.ToNumeric(), nil
}
