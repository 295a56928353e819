package rut_test

import (
	"errors"
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

// FuzzParse shows that Parse never panics, that whatever it accepts is valid, and
// that every formatting of a parsed RUT parses back to the same RUT.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"12.345.678-5", "123456785", "23000000-k", "0-0", "", "-", "K", "1-9",
		"999.999.999-6", "1234567890-1", " 7654321 - 6 ", "00000000001-9", "\t15000013\t0",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := rut.Parse(raw)
		if err != nil {
			return
		}
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
