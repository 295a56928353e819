package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/pgtest"
)

// TestCopyBinaryEncoding sends every kind of value the hand-made COPY encoder
// writes through a real COPY and reads it back as text.
func TestCopyBinaryEncoding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `CREATE TEMP TABLE enc (v numeric(12,2), i bigint, n int, s varchar(20), b boolean,
		j jsonb, ts timestamptz, z bigint)`)
	require.NoError(t, err)

	values := []money.Cents{0, 1, -1, 5, 10, 99, 100, 101, -100, 1000, 9999, 10000, 10001, 123456, -123456,
		1000000, 100000000, 100000001, 999999999999, -999999999999, 120000075, 50, 4000000000}
	at := time.Date(2026, 3, 31, 23, 59, 58, 123456000, time.UTC)
	c := newCopyBinary(0)
	for i, v := range values {
		c = c.row(8)
		c = c.numeric(int64(v))
		c = c.int8(int64(-i) * 1_000_000_007)
		c = c.int4(int32(i))
		c = c.text("ñandú " + v.String())
		c = c.bool(i%2 == 0)
		c = c.jsonb([]byte(`["libro","novedades"]`))
		c = c.timestamptz(at)
		c = c.null()
	}
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(c.bytes()), "COPY enc FROM STDIN (FORMAT binary)")
	require.NoError(t, err)

	rows, err := conn.Query(ctx, "SELECT v::text, i, n, s, b, j::text, ts, z IS NULL FROM enc ORDER BY n")
	require.NoError(t, err)
	defer rows.Close()
	i := 0
	for rows.Next() {
		var text, s, j string
		var iv int64
		var n int32
		var b, null bool
		var ts time.Time
		require.NoError(t, rows.Scan(&text, &iv, &n, &s, &b, &j, &ts, &null))
		require.Equal(t, values[i].String(), text, "value %d", i)
		require.Equal(t, int64(-i)*1_000_000_007, iv)
		require.Equal(t, int32(i), n)
		require.Equal(t, "ñandú "+values[i].String(), s)
		require.Equal(t, i%2 == 0, b)
		require.Equal(t, `["libro", "novedades"]`, j)
		require.True(t, at.Equal(ts), "timestamp %v", ts)
		require.True(t, null)
		i++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(values), i)
}

// TestCopyBinaryTimestampsFarFromTheEpoch: found by FuzzCopyBinary, timestamps more
// than 292 years from 2000 were written as the limit of a time.Duration (year 2318
// became 2292), and those before 2000 with a fraction of a microsecond rounded up.
func TestCopyBinaryTimestampsFarFromTheEpoch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgtest.NewPool(t).Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `CREATE TEMP TABLE enc (n int, ts timestamptz)`)
	require.NoError(t, err)
	times := []time.Time{
		time.Date(2318, 7, 30, 19, 33, 20, 500, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC),
	}
	c := newCopyBinary(0)
	for i, at := range times {
		c = c.row(2).int4(int32(i)).timestamptz(at)
	}
	_, err = conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(c.bytes()), "COPY enc FROM STDIN (FORMAT binary)")
	require.NoError(t, err)
	for i, at := range times {
		var got time.Time
		require.NoError(t, conn.QueryRow(ctx, "SELECT ts FROM enc WHERE n = $1", i).Scan(&got))
		require.Equal(t, at.Truncate(time.Microsecond), got.UTC(), "timestamp %d", i)
	}
}

// TestNumericCents decodes numerics as PostgreSQL sends them in binary: exact
// cents for every amount numeric(12,2) holds, an error for what cents cannot say.
func TestNumericCents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	for _, text := range []string{"0", "0.01", "-0.01", "0.5", "0.05", "0.10", "0.99", "1", "-1", "99.99", "100", "9999.99",
		"10000", "10000.01", "123456.78", "-123456.78", "1000000", "100000000.5", "9999999999.99", "-9999999999.99",
		"1200000.75", "40000000", "0.00", "-0.00"} {
		want, err := money.Parse(text)
		require.NoError(t, err)
		for _, typ := range []string{"numeric(12,2)", "numeric"} {
			var raw []byte
			// A binary result column, as ReadChunk receives it.
			rows, err := pool.Query(ctx, "SELECT $1::text::"+typ, binaryResults, text)
			require.NoError(t, err)
			require.True(t, rows.Next())
			raw = append(raw, rows.RawValues()[0]...)
			rows.Close()
			require.NoError(t, rows.Err())
			got, err := numericCents(raw)
			require.NoError(t, err, "%s as %s", text, typ)
			require.Equal(t, want, got, "%s as %s", text, typ)
			// numeric writes what numericCents reads.
			enc := newCopyBinary(0).numeric(int64(want))[len(copyHeader)+4:]
			back, err := numericCents(enc)
			require.NoError(t, err)
			require.Equal(t, want, back)
		}
	}
	for _, text := range []string{"0.001", "1.005", "NaN", "Infinity", "-Infinity", "10000000000", "123456789012345678"} {
		rows, err := pool.Query(ctx, "SELECT $1::text::numeric", binaryResults, text)
		require.NoError(t, err)
		require.True(t, rows.Next())
		raw := append([]byte(nil), rows.RawValues()[0]...)
		rows.Close()
		_, err = numericCents(raw)
		require.Error(t, err, text)
	}
	_, err := numericCents([]byte{0, 1, 0, 0})
	require.Error(t, err)
	_, err = numericCents([]byte{0, 2, 0, 0, 0, 0, 0, 2, 0, 1})
	require.Error(t, err, "two digits announced, one sent")
}

// binaryResults asks pgx for every result column in binary.
var binaryResults = pgx.QueryResultFormats{pgx.BinaryFormatCode}
