// Package schema holds the database migrations, numbered SQL files embedded in the
// binary, and applies them (`coordinator migrate`); the columns the service needs
// on the application's tables (Validate); and the grants of its run-time role
// (RuntimeGrants).
package schema

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// lockKey is the advisory lock that serializes concurrent migrators.
const lockKey = 7_463_201_554

// noTransactionMarker, as the first line of a migration, runs it outside a
// transaction, statement by statement (CREATE INDEX CONCURRENTLY needs that).
const noTransactionMarker = "-- migrate:no-transaction"

const sqlCreateSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())`

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
	// NoTransaction migrations run statement by statement outside a transaction;
	// each statement must be safe to run again.
	NoTransaction bool
}

// Migrations lists the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	out := make([]Migration, 0, len(entries))
	for _, path := range entries {
		base := strings.TrimPrefix(path, "migrations/")
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s: name must be NNN_name.sql", base)
		}
		body, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		sql := string(body)
		firstLine, _, _ := strings.Cut(sql, "\n")
		out = append(out, Migration{Version: version, Name: name, SQL: sql,
			NoTransaction: strings.TrimSpace(firstLine) == noTransactionMarker})
	}
	slices.SortFunc(out, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations numbered %d", out[i].Version)
		}
	}
	return out, nil
}

// Migrate brings the schema up to date, then checks the columns the service reads
// and writes (Validate). It is idempotent and safe to run from several processes at
// once: an advisory lock serializes them. A migration runs in its own transaction
// together with its schema_migrations row, except a no-transaction one, whose
// statements run one by one and whose row is written after the last.
func Migrate(ctx context.Context, logger *slog.Logger, pool *pgxpool.Pool) (applied int, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquiring a connection to migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return 0, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()
	if _, err := conn.Exec(ctx, sqlCreateSchemaMigrations); err != nil {
		return 0, fmt.Errorf("creating schema_migrations: %w", err)
	}
	pending, err := pendingMigrations(ctx, conn.Conn())
	if err != nil {
		return 0, err
	}
	for _, m := range pending {
		if err := apply(ctx, conn.Conn(), m); err != nil {
			return applied, fmt.Errorf("applying migration %03d_%s: %w", m.Version, m.Name, err)
		}
		applied++
		logger.InfoContext(ctx, "migration applied", "migration", m.Version, "name", m.Name)
	}
	if err := Validate(ctx, conn); err != nil {
		return applied, err
	}
	return applied, nil
}

// PrintSQL writes the SQL that Migrate would run on this database, for a DBA who
// applies it instead (`coordinator migrate -print`), and changes nothing. It is
// psql input: transactional migrations are wrapped in BEGIN/COMMIT, the statements
// of no-transaction ones stand alone, and each records its schema_migrations row.
func PrintSQL(ctx context.Context, pool *pgxpool.Pool, w io.Writer) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()
	pending, err := pendingMigrations(ctx, conn.Conn())
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("-- Migrations of the consolidation service not yet applied to this database.\n")
	if len(pending) == 0 {
		b.WriteString("-- None: the schema is up to date.\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString(sqlCreateSchemaMigrations + ";\n")
	for _, m := range pending {
		steps, err := migrationSteps(ctx, conn.Conn(), m)
		if err != nil {
			return fmt.Errorf("planning migration %03d_%s: %w", m.Version, m.Name, err)
		}
		fmt.Fprintf(&b, "\n-- %03d_%s", m.Version, m.Name)
		if m.NoTransaction {
			b.WriteString(" (no transaction: run each statement on its own)\n")
		} else {
			b.WriteString("\nBEGIN;\n")
		}
		for _, s := range steps {
			if m.NoTransaction {
				s += ";" // split off at its semicolon
			}
			b.WriteString(strings.TrimRight(s, " \n") + "\n")
		}
		fmt.Fprintf(&b, "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s') ON CONFLICT DO NOTHING;\n",
			m.Version, m.Name)
		if !m.NoTransaction {
			b.WriteString("COMMIT;\n")
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// RowQuerier reads: a pool, a connection, a transaction.
type RowQuerier interface {
	Querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// NotMigratedError is Pending's answer for a database some migrations of this
// build were not applied to: the service's tables are missing or lack columns.
type NotMigratedError struct {
	Pending, Total int
	First          Migration // the first one not applied
}

func (e *NotMigratedError) Error() string {
	if e.Pending == e.Total {
		return fmt.Sprintf("the database is not migrated (none of the %d migrations is applied): run `coordinator migrate` "+
			"with this DATABASE_URL first (docs/database.md)", e.Total)
	}
	return fmt.Sprintf("the database is migrated partly (%d of %d migrations not applied, from %03d_%s): run `coordinator migrate` "+
		"with this DATABASE_URL first (docs/database.md)", e.Pending, e.Total, e.First.Version, e.First.Name)
}

// CheckMigrated returns a *NotMigratedError when some migration of this build
// is not applied to the database; any other error means schema_migrations could
// not be read (a run-time role is granted no access to it). It writes nothing.
func CheckMigrated(ctx context.Context, q RowQuerier) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	pending, err := pendingMigrations(ctx, q)
	if err != nil || len(pending) == 0 {
		return err
	}
	return &NotMigratedError{Pending: len(pending), Total: len(all), First: pending[0]}
}

// pendingMigrations are the migrations schema_migrations does not list (all of
// them when it does not exist yet); it writes nothing.
func pendingMigrations(ctx context.Context, conn RowQuerier) ([]Migration, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("looking for schema_migrations: %w", err)
	}
	if !exists {
		return migrations, nil
	}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	return slices.DeleteFunc(migrations, func(m Migration) bool { return slices.Contains(done, int32(m.Version)) }), nil
}

func apply(ctx context.Context, conn *pgx.Conn, m Migration) error {
	steps, err := migrationSteps(ctx, conn, m)
	if err != nil {
		return err
	}
	const record = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"
	if !m.NoTransaction {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, s := range steps {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, record, m.Version, m.Name)
			return err
		})
	}
	for _, s := range steps {
		// The simple protocol: one statement, no implicit transaction around it.
		if _, err := conn.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	_, err = conn.Exec(ctx, record+" ON CONFLICT DO NOTHING", m.Version, m.Name)
	return err
}

// concurrentIndex matches the statements of a no-transaction migration that build
// an index, capturing its name.
var concurrentIndex = regexp.MustCompile(`(?is)^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)\s`)

// migrationSteps are the statements applying m runs now: its whole SQL when it is
// transactional; otherwise its statements, each index build preceded by a
// DROP INDEX CONCURRENTLY when a build that failed left that index INVALID (IF NOT
// EXISTS would keep the broken index forever).
func migrationSteps(ctx context.Context, conn *pgx.Conn, m Migration) ([]string, error) {
	if !m.NoTransaction {
		return []string{m.SQL}, nil
	}
	var steps []string
	for _, s := range splitStatements(m.SQL) {
		if match := concurrentIndex.FindStringSubmatch(s); match != nil {
			var invalid bool
			err := conn.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
				               WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace
				                 AND NOT i.indisvalid)`, match[1]).Scan(&invalid)
			if err != nil {
				return nil, fmt.Errorf("looking for an invalid index %s: %w", match[1], err)
			}
			if invalid {
				steps = append(steps, "DROP INDEX CONCURRENTLY IF EXISTS "+pgx.Identifier{match[1]}.Sanitize())
			}
		}
		steps = append(steps, s)
	}
	return steps, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
