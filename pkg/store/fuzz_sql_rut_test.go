package store_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rut"
)

// FuzzSQLCanonicalRUTMatchesGo runs the database's nomina_rut_canonical (migrations
// 002 and 005), which finds novedades and movements through an index, and pkg/rut on
// the same input: both refuse it, or both give the same canonical RUT. A
// disagreement would make a worker miss a source row, or fetch one it then drops.
// PostgreSQL text cannot hold invalid UTF-8 or a NUL byte, so those inputs, which
// no source column can contain, are skipped.
func FuzzSQLCanonicalRUTMatchesGo(f *testing.F) {
	for _, seed := range []string{
		"12.345.678-5", "123456785", " 12.345.678 - 5 ", "\t12345678\t-5", "0012.345.678-5", "23.000.000-k",
		"15.000.013-0", "1-9", "999.999.999-6", "12-345-678-5", "", " .-\t", "12.345.678-9", "12345678-K",
		"12A45678-5", "5", "000-0", "1234567890-1", "12345678-5\n", "12,345,678-5", "1K345678-5", "k", "0K",
		"6-k", "0000000000006-K", "12345678-5\r", "12\u00a0345\u00a0678-5", "\u0661\u0662\u0663-5",
		"１２３４５６７８-５", "12345678‐5", "12345678-5 ", "-12345678-5", "12345678-55", "4294967296-0",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	pool := pgtest.OpenPool(f, pgtest.NewFuzzDatabase(f))
	f.Fuzz(func(t *testing.T, raw string) {
		if !utf8.ValidString(raw) || strings.ContainsRune(raw, 0) {
			t.Skip("not a PostgreSQL text value")
		}
		var sqlCanon *string
		require.NoError(t, pool.QueryRow(ctx, "SELECT nomina_rut_canonical($1)", raw).Scan(&sqlCanon))
		goCanon, err := rut.Normalize(raw)
		if err != nil {
			require.Nil(t, sqlCanon, "SQL normalizes %q, Go refuses it", raw)
			return
		}
		require.NotNil(t, sqlCanon, "Go normalizes %q, SQL refuses it", raw)
		require.Equal(t, goCanon, *sqlCanon, "%q", raw)
	})
}
