package bench

// Per-statement figures from pg_stat_statements (-statements): they say where
// PostgreSQL's time goes during a closing, and their buffer and WAL counts do not
// depend on how busy the machine is.

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// statementsSetting loads pg_stat_statements into the benchmark's PostgreSQL.
var statementsSettings = []string{"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.max=1000",
	"pg_stat_statements.track_utility=on"}

// Statement is one row of pg_stat_statements.
type Statement struct {
	Query                        string
	Calls, Rows                  int64
	TotalMs, MeanMs              float64
	BlksHit, BlksRead, BlksDirty int64
	WALBytes                     float64
}

// resetStatements creates the extension in the database (once) and empties its counters.
func resetStatements(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	_, err := pool.Exec(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// topStatements reads the statements of the pool's database that took the most
// time since the last reset (at most limit, at least 0.5 % of the total).
func topStatements(ctx context.Context, pool *pgxpool.Pool, limit int) ([]Statement, error) {
	rows, err := pool.Query(ctx, `
		WITH s AS (
			SELECT query, calls, rows, total_exec_time, mean_exec_time, shared_blks_hit, shared_blks_read,
			       shared_blks_dirtied, wal_bytes::float8
			FROM pg_stat_statements
			WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND query NOT LIKE '%pg_stat_statements%')
		SELECT * FROM s WHERE total_exec_time >= 0.005 * (SELECT sum(total_exec_time) FROM s)
		ORDER BY total_exec_time DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Statement, error) {
		var s Statement
		err := row.Scan(&s.Query, &s.Calls, &s.Rows, &s.TotalMs, &s.MeanMs, &s.BlksHit, &s.BlksRead, &s.BlksDirty, &s.WALBytes)
		return s, err
	})
}

// printStatements writes a table of statements; rows of a COPY count per row.
func printStatements(w io.Writer, title string, ss []Statement) {
	fmt.Fprintf(w, "\n%s (pg_stat_statements; times include waiting for a core):\n\n", title)
	fmt.Fprintf(w, "| statement | calls | total ms | mean ms | rows | µs/row | shared blks hit / read / dirtied | WAL MiB |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range ss {
		perRow := "—"
		if s.Rows > 0 {
			perRow = fmt.Sprintf("%.1f", 1000*s.TotalMs/float64(s.Rows))
		}
		fmt.Fprintf(w, "| `%s` | %d | %.0f | %.2f | %d | %s | %d / %d / %d | %.1f |\n", shortQuery(s.Query, 90), s.Calls,
			s.TotalMs, s.MeanMs, s.Rows, perRow, s.BlksHit, s.BlksRead, s.BlksDirty, s.WALBytes/(1<<20))
	}
}

// shortQuery is a query on one line, cut to n characters.
func shortQuery(q string, n int) string {
	q = strings.Join(strings.Fields(q), " ")
	q = strings.ReplaceAll(q, "|", "¦")
	if r := []rune(q); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return q
}
