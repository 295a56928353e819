package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/store"
)

// Behind PgBouncer in transaction pooling mode with one server session, two
// client connections take turns on that session. The pools of PoolerTransaction
// work there; pgx's default statement cache does not: the second client's
// prepare of the same statement meets the first one's on the shared session
// (docs/capacity.md, "Through a connection pooler").
func TestPoolsBehindATransactionPooler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := localdb.StartPostgres(ctx)
	require.NoError(t, err)
	t.Cleanup(pg.Stop)
	bouncer, err := localdb.StartPgBouncer(ctx, pg, localdb.PgBouncerConfig{PoolSize: 1})
	require.NoError(t, err)
	t.Cleanup(bouncer.Stop)
	open := func(pooler store.Pooler) *pgxpool.Pool {
		pool, err := store.OpenPool(ctx, bouncer.URL("postgres"), pooler, "pooler-test", 1, 1)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool
	}
	const q = "SELECT pg_backend_pid() + $1::int"
	backend := func(pool *pgxpool.Pool) (int, error) {
		var pid int
		err := pool.QueryRow(ctx, q, 0).Scan(&pid)
		return pid, err
	}

	a, b := open(store.PoolerTransaction), open(store.PoolerTransaction)
	for range 5 {
		pa, err := backend(a)
		require.NoError(t, err)
		pb, err := backend(b)
		require.NoError(t, err)
		require.Equal(t, pa, pb, "both clients ran on the pooler's one server session")
	}
	// A transaction of several statements, each on the session the transaction holds.
	tx, err := a.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "CREATE TEMP TABLE t (n int) ON COMMIT DROP")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO t SELECT $1::int", 7)
	require.NoError(t, err)
	var n int
	require.NoError(t, tx.QueryRow(ctx, "SELECT sum(n) FROM t").Scan(&n))
	require.Equal(t, 7, n)
	require.NoError(t, tx.Commit(ctx))

	c, d := open(store.PoolerNone), open(store.PoolerNone)
	_, err = backend(c)
	require.NoError(t, err)
	_, err = backend(d)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "pgx's default statement cache through a transaction pooler: %v", err)
	require.Equal(t, "42P05", pgErr.Code, "the prepared statement already exists on the shared session")
}
