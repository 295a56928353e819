package store

import (
	"bytes"
	"context"
	"testing"
	"time"

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
