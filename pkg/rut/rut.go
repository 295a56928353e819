// Package rut normalizes and validates Chilean RUTs (rule R1 of the specification).
//
// A raw RUT is normalized by removing dots, spaces, tabs and dashes, upper-casing a
// trailing 'k', stripping leading zeros of the body and checking the mod-11 check
// digit. The canonical form is the body without dots, a dash and the check digit:
// "12345678-5". Every match between sources uses the canonical form.
package rut

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxBody is the largest body a RUT may have (nine digits).
const MaxBody = 999_999_999

// Reasons a raw value is not a RUT. Parse wraps one of them in a *ParseError.
var (
	ErrEmpty      = errors.New("empty")
	ErrMalformed  = errors.New("not digits followed by a check digit")
	ErrTooLong    = errors.New("body longer than nine digits")
	ErrCheckDigit = errors.New("check digit does not match")
)

// ParseError says why a raw value does not normalize. Its message quotes the raw
// value, so callers that must not log personal data use Reason instead.
type ParseError struct {
	Raw    string
	Reason error
	// WantDV is the check digit the body gives, with ErrCheckDigit (0 otherwise).
	WantDV byte
}

func (e *ParseError) Error() string { return fmt.Sprintf("rut %q: %v", e.Raw, e.Reason) }

func (e *ParseError) Unwrap() error { return e.Reason }

// RUT is a valid, canonical RUT. The zero value is not a valid RUT.
type RUT struct {
	body uint32
	dv   byte
}

// New builds the RUT of a body, computing its check digit.
func New(body uint32) (RUT, error) {
	if body == 0 || body > MaxBody {
		return RUT{}, fmt.Errorf("rut body %d out of range 1..%d", body, MaxBody)
	}
	return RUT{body: body, dv: CheckDigit(body)}, nil
}

// Parse normalizes a raw spelling such as "12.345.678-5", " 012345678 5" or
// "7654321-k" into a RUT.
func Parse(raw string) (RUT, error) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '.', ' ', '\t', '-':
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()
	if s == "" {
		return RUT{}, &ParseError{Raw: raw, Reason: ErrEmpty}
	}
	dv := s[len(s)-1]
	if dv == 'k' {
		dv = 'K'
	}
	digits := strings.TrimLeft(s[:len(s)-1], "0")
	if !(dv == 'K' || isDigit(dv)) || digits == "" {
		return RUT{}, &ParseError{Raw: raw, Reason: ErrMalformed}
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return RUT{}, &ParseError{Raw: raw, Reason: ErrMalformed}
		}
	}
	if len(digits) > 9 {
		return RUT{}, &ParseError{Raw: raw, Reason: ErrTooLong}
	}
	body, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return RUT{}, &ParseError{Raw: raw, Reason: ErrMalformed}
	}
	if want := CheckDigit(uint32(body)); want != dv {
		return RUT{}, &ParseError{Raw: raw, Reason: ErrCheckDigit, WantDV: want}
	}
	return RUT{body: uint32(body), dv: dv}, nil
}

// Normalize returns the canonical form of a raw spelling.
func Normalize(raw string) (string, error) {
	r, err := Parse(raw)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// CheckDigit computes the mod-11 check digit of a body: weights 2..7 repeating from
// the right; 11 gives '0' and 10 gives 'K'.
func CheckDigit(body uint32) byte {
	sum, weight := uint32(0), uint32(2)
	for ; body > 0; body /= 10 {
		sum += (body % 10) * weight
		weight++
		if weight > 7 {
			weight = 2
		}
	}
	switch d := 11 - sum%11; d {
	case 11:
		return '0'
	case 10:
		return 'K'
	default:
		return byte('0' + d)
	}
}

// Body is the number before the check digit.
func (r RUT) Body() uint32 { return r.body }

// DV is the check digit, '0'..'9' or 'K'.
func (r RUT) DV() byte { return r.dv }

// IsZero reports whether r is the zero value (not a RUT).
func (r RUT) IsZero() bool { return r.body == 0 }

// String is the canonical form, "12345678-5".
func (r RUT) String() string {
	return strconv.FormatUint(uint64(r.body), 10) + "-" + string(r.dv)
}

// Dotted is the form people write, "12.345.678-5".
func (r RUT) Dotted() string {
	s := strconv.FormatUint(uint64(r.body), 10)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('-')
	b.WriteByte(r.dv)
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
