package schema

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		want      []string
	}{
		{"TwoStatements", "SELECT 1;\nSELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"DropsComments", "-- a; comment\nSELECT 1; /* b; */ SELECT 2 -- c;\n", []string{"SELECT 1", "SELECT 2"}},
		{"KeepsQuotedSemicolons", `SELECT 'a;b', "c;d";`, []string{`SELECT 'a;b', "c;d"`}},
		{"KeepsDollarBodies", "DO $$ BEGIN PERFORM 1; END $$;\nDO $x$ SELECT ';' $x$;",
			[]string{"DO $$ BEGIN PERFORM 1; END $$", "DO $x$ SELECT ';' $x$"}},
		{"PositionalParameterIsNoDollarQuote", "SELECT $1; SELECT 2", []string{"SELECT $1", "SELECT 2"}},
		{"OnlyComments", "-- nothing\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, splitStatements(tc.sql))
		})
	}
}
