package bench

// The benchmark's own work on the database between measurements: resetting a
// closing, settling the tables, reading autovacuum's and the server's counters.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// resetClosing takes a consolidated closing back to where it was before its first
// run, so the next repeat measures the same work: no result rows to replace.
func resetClosing(ctx context.Context, pool *pgxpool.Pool, closing int64) error {
	if err := deleteResults(ctx, pool, closing); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, sqlSettleResults); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = 'verificado_sin_discrepancias' WHERE id = $1", closing)
	return err
}

// settleSources vacuums and analyzes the database after a closing was generated,
// as a closing loaded well before its close would be: otherwise autovacuum's
// first pass over millions of freshly inserted source rows lands in the first
// measured closing or its floor (seen: 7 s of a core on the libro lines during
// the first floor of a 100,000-employee closing).
func settleSources(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, "VACUUM (ANALYZE)")
	return err
}

// sqlSettleResults vacuums and analyzes the result tables after their rows were
// deleted, so a measurement (a closing, a floor) starts with nothing left for
// autovacuum to do: a plain VACUUM leaves the deletes counted as changes since the
// last analyze, and autovacuum's analyze of millions of them then landed inside
// the floor that followed (7–8 passes in every floor of a 100,000-employee
// closing, none in the closings: the floor was the one slowed down).
const sqlSettleResults = "VACUUM (ANALYZE) nomina_empleado_consolidado, nomina_concepto_empleado_consolidado"

// autovacuumPasses is how many vacuums and analyzes autovacuum has finished on the
// database's tables so far (PostgreSQL reports each as it ends one table).
func autovacuumPasses(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint
		FROM pg_stat_user_tables`).Scan(&n)
	return n, err
}

// deleteResults deletes a closing's result rows, concepts first (a schema variant
// may have no cascade).
func deleteResults(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, closing int64) error {
	if _, err := q.Exec(ctx, `DELETE FROM nomina_concepto_empleado_consolidado WHERE empleado_consolidado_id IN
		(SELECT id FROM nomina_empleado_consolidado WHERE cierre_id = $1)`, closing); err != nil {
		return err
	}
	_, err := q.Exec(ctx, "DELETE FROM nomina_empleado_consolidado WHERE cierre_id = $1", closing)
	return err
}

// serverReading is the PostgreSQL server's postmaster process (0 when it is not
// a process of this machine) and its current WAL position, read before a closing.
func serverReading(ctx context.Context, pool *pgxpool.Pool) (postmaster int, wal string, err error) {
	var backend int
	err = pool.QueryRow(ctx, "SELECT pg_backend_pid(), pg_current_wal_lsn()::text").Scan(&backend, &wal)
	if err != nil {
		return 0, "", fmt.Errorf("reading the server's WAL position: %w", err)
	}
	return postmasterOf(backend), wal, nil
}
