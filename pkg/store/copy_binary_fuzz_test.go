package store

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/pgtest"
)

// FuzzCopyBinary sends one row of every kind of value the hand-made COPY encoder
// writes through a real COPY ... (FORMAT binary) and compares what PostgreSQL
// stored with the value meant: numerics as their text (any int64 of cents, beyond
// numeric(12,2)), integers, text, booleans, jsonb as PostgreSQL's own text parse of
// the same JSON, timestamps to the microsecond (rounded down, as pgx does) over
// the whole range both Go and PostgreSQL hold, and NULL.
func FuzzCopyBinary(f *testing.F) {
	at := time.Date(2026, 3, 31, 23, 59, 58, 123456789, time.UTC)
	f.Add(int64(0), int64(0), int32(0), "", false, `[]`, at.Unix(), int64(at.Nanosecond()), false)
	f.Add(int64(123456), int64(-1), int32(-1), "ñandú", true, `["libro","novedades"]`, int64(0), int64(0), true)
	f.Add(int64(999999999999), int64(1)<<62, int32(1)<<30, "O'Higgins \\ \t\n", true, `{"a":1,"a":2}`, int64(-62135596800), int64(0), false)
	f.Add(int64(-9223372036854775808), int64(-9223372036854775808), int32(-2147483648), "x", false, `1e400`, int64(9214646400), int64(999999999), false)
	f.Add(int64(9223372036854775807), int64(9223372036854775807), int32(2147483647), "\x00\xff", true, `"\u0000"`, int64(946684799), int64(999999999), false)
	f.Add(int64(10000), int64(100000001), int32(7), "日本", false, `{"k":[1,2,{"x":null}]}`, int64(-1), int64(1), false)
	f.Add(int64(-100000000), int64(5), int32(5), "a", true, `not json`, int64(11000000000), int64(500), false)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewFuzzDatabase(f))
	require.NoError(f, err)
	f.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, `CREATE TEMP TABLE enc (v numeric, i bigint, n int, s text, b boolean, j jsonb, ts timestamptz, z bigint)`)
	require.NoError(f, err)

	// Go's Time and PostgreSQL's timestamptz (4713 BC to 294276 AD) both hold
	// years 1 to 294275; Truncate rounds down from year 1.
	first := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(294275, 12, 31, 23, 59, 59, 999999999, time.UTC)

	f.Fuzz(func(t *testing.T, cents, i8 int64, i4 int32, s string, b bool, j string, sec, nsec int64, null bool) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "?") // what text can hold
		var wantJSON string
		if err := conn.QueryRow(ctx, "SELECT $1::text::jsonb::text", j).Scan(&wantJSON); err != nil {
			j, wantJSON = "null", "null" // PostgreSQL refuses this JSON as text too
		}
		if sec < first.Unix() || sec > last.Unix() {
			sec %= last.Unix()
		}
		ts := time.Unix(sec, nsec%1e9).UTC()
		if ts.Before(first) || ts.After(last) {
			ts = at
		}

		c := newCopyBinary(0).row(8)
		c = c.numeric(cents).int8(i8).int4(i4).text(s).bool(b).jsonb([]byte(j)).timestamptz(ts)
		if null {
			c = c.null()
		} else {
			c = c.int8(i8)
		}
		_, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(c.bytes()), "COPY enc FROM STDIN (FORMAT binary)")
		require.NoError(t, err)
		defer func() {
			_, err := conn.Exec(ctx, "DELETE FROM enc")
			require.NoError(t, err)
		}()

		var gotNumeric, gotS, gotJSON string
		var gotI8 int64
		var gotI4 int32
		var gotB bool
		var gotTS time.Time
		var gotZ *int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT v::text, i, n, s, b, j::text, ts, z FROM enc").
			Scan(&gotNumeric, &gotI8, &gotI4, &gotS, &gotB, &gotJSON, &gotTS, &gotZ))
		require.Equal(t, money.Cents(cents).String(), gotNumeric, "cents %d", cents)
		require.Equal(t, i8, gotI8)
		require.Equal(t, i4, gotI4)
		require.Equal(t, s, gotS)
		require.Equal(t, b, gotB)
		require.Equal(t, wantJSON, gotJSON, "json %q", j)
		require.True(t, ts.Truncate(time.Microsecond).Equal(gotTS), "timestamp %v stored as %v", ts, gotTS.UTC())
		if null {
			require.Nil(t, gotZ)
		} else {
			require.NotNil(t, gotZ)
			require.Equal(t, i8, *gotZ)
		}
	})
}
