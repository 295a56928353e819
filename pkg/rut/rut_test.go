package rut_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/rut"
)

func TestParse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"Canonical", "12345678-5", "12345678-5"},
		{"Dotted", "12.345.678-5", "12345678-5"},
		{"NoDash", "123456785", "12345678-5"},
		{"SpacesAroundDash", " 12.345.678 - 5 ", "12345678-5"},
		{"Tabs", "\t12345678\t-5", "12345678-5"},
		{"LeadingZeros", "0012.345.678-5", "12345678-5"},
		{"LowerK", "23.000.000-k", "23000000-K"},
		{"UpperK", "23000000-K", "23000000-K"},
		{"CheckDigitZero", "15.000.013-0", "15000013-0"},
		{"SevenDigitBody", "7.654.321-6", "7654321-6"},
		{"OneDigitBody", "1-9", "1-9"},
		{"NineDigitBody", "999.999.999-6", "999999999-6"},
		{"DashesEverywhere", "12-345-678-5", "12345678-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rut.Normalize(tt.raw)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		raw    string
		reason error
	}{
		{"Empty", "", rut.ErrEmpty},
		{"OnlySeparators", " .-\t", rut.ErrEmpty},
		{"WrongCheckDigit", "12.345.678-9", rut.ErrCheckDigit},
		{"KWhereDigitExpected", "12345678-K", rut.ErrCheckDigit},
		{"Letters", "12A45678-5", rut.ErrMalformed},
		{"OnlyCheckDigit", "5", rut.ErrMalformed},
		{"AllZeroBody", "000-0", rut.ErrMalformed},
		{"TenDigitBody", "1234567890-1", rut.ErrTooLong},
		{"OtherWhitespace", "12345678-5\n", rut.ErrMalformed},
		{"CommaSeparator", "12,345,678-5", rut.ErrMalformed},
		{"KInBody", "1K345678-5", rut.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := rut.Parse(tt.raw)
			require.Error(t, err)
			require.True(t, errors.Is(err, tt.reason), "got %v, want %v", err, tt.reason)
			var perr *rut.ParseError
			require.ErrorAs(t, err, &perr)
			require.Equal(t, tt.raw, perr.Raw)
		})
	}
}

func TestCheckDigit(t *testing.T) {
	t.Parallel()

	tests := []struct {
		body uint32
		want byte
	}{
		{12345678, '5'}, {7654321, '6'}, {11111111, '1'}, {1, '9'}, {9, '4'},
		{23000000, 'K'}, {6, 'K'}, {15000013, '0'}, {999999999, '6'},
	}
	for _, tt := range tests {
		require.Equal(t, string(tt.want), string(rut.CheckDigit(tt.body)), "body %d", tt.body)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()

	r, err := rut.New(12345678)
	require.NoError(t, err)
	require.Equal(t, "12345678-5", r.String())
	require.Equal(t, "12.345.678-5", r.Dotted())

	small, err := rut.New(1)
	require.NoError(t, err)
	require.Equal(t, "1-9", small.Dotted())

	_, err = rut.New(0)
	require.Error(t, err)
	_, err = rut.New(rut.MaxBody + 1)
	require.Error(t, err)
}

// FuzzParse shows that Parse never panics, that it agrees with referenceNormalize
// (rule R1 written again from docs/rules.md, on strings and big numbers), that a
// refusal is a *ParseError quoting the raw value with one of the four reasons, and
// that every formatting of a parsed RUT parses back to the same RUT.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"12.345.678-5", "123456785", "23000000-k", "0-0", "", "-", "K", "k", "1-9", "0K",
		"999.999.999-6", "1234567890-1", " 7654321 - 6 ", "00000000001-9", "\t15000013\t0",
		"4294967296-0", "18446744073709551616-1", "0000000000000000000000001-9", "12345678-5\n",
		"12,345,678-5", "1K345678-5", "1\u00a02345678-5", "\u0661\u0662-5", "+12345678-5", "6-K", "6-k",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		want, wantOK := referenceNormalize(raw)
		r, err := rut.Parse(raw)
		if err != nil {
			require.False(t, wantOK, "Parse refuses %q, the reference gives %s", raw, want)
			var perr *rut.ParseError
			require.ErrorAs(t, err, &perr)
			require.Equal(t, raw, perr.Raw)
			reasons := 0
			for _, reason := range []error{rut.ErrEmpty, rut.ErrMalformed, rut.ErrTooLong, rut.ErrCheckDigit} {
				if errors.Is(err, reason) {
					reasons++
				}
			}
			require.Equal(t, 1, reasons, "%v", err)
			return
		}
		require.True(t, wantOK, "Parse accepts %q as %s, the reference refuses it", raw, r)
		require.Equal(t, want, r.String())
		require.False(t, r.IsZero())
		require.Equal(t, rut.CheckDigit(r.Body()), r.DV())
		for _, form := range []string{r.String(), r.Dotted()} {
			again, err := rut.Parse(form)
			require.NoError(t, err, "reparsing %q", form)
			require.Equal(t, r, again)
		}
		canon, err := rut.Normalize(r.String())
		require.NoError(t, err)
		require.Equal(t, r.String(), canon)
	})
}

// referenceNormalize is R1 written independently of pkg/rut: drop dots, spaces,
// tabs and dashes; what is left must be ASCII digits and a final digit or k/K;
// the body without leading zeros has one to nine digits; the mod-11 check digit
// (weights 2..7 from the right) is computed on the digits as text, with math/big
// for the sum so no length can overflow.
func referenceNormalize(raw string) (string, bool) {
	s := strings.NewReplacer(".", "", " ", "", "\t", "", "-", "").Replace(raw)
	if len(s) < 2 {
		return "", false
	}
	body, dv := strings.TrimLeft(s[:len(s)-1], "0"), strings.ToUpper(s[len(s)-1:])
	if strings.Trim(s[:len(s)-1], "0123456789") != "" || strings.Trim(dv, "0123456789K") != "" {
		return "", false
	}
	if body == "" || len(body) > 9 {
		return "", false
	}
	sum := new(big.Int)
	for i, w := len(body)-1, int64(2); i >= 0; i-- {
		sum.Add(sum, big.NewInt(int64(body[i]-'0')*w))
		if w++; w > 7 {
			w = 2
		}
	}
	want := map[int64]string{11: "0", 10: "K"}
	d := 11 - new(big.Int).Mod(sum, big.NewInt(11)).Int64()
	digit, special := want[d]
	if !special {
		digit = string(rune('0' + d))
	}
	if dv != digit {
		return "", false
	}
	return body + "-" + dv, true
}
