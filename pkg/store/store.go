// Package store is the service's only door to PostgreSQL for closing data: it reads
// a chunk's sources set-based (a fixed handful of queries whatever the chunk size)
// and writes consolidated rows with COPY. All SQL of the data path lives here.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/redact"
)

// Querier is what the store needs of a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// interpretError translates driver errors into the store's own, once, at the edge.
func interpretError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// Closing is one row of nomina_cierrenomina.
type Closing struct {
	ID     int64
	Mes    int
	Anno   int
	Estado domain.Estado
}

// GetClosing reads a closing.
func GetClosing(ctx context.Context, q Querier, id int64) (Closing, error) {
	c := Closing{ID: id}
	err := q.QueryRow(ctx, "SELECT mes, anno, estado FROM nomina_cierrenomina WHERE id = $1", id).
		Scan(&c.Mes, &c.Anno, &c.Estado)
	if err != nil {
		return Closing{}, fmt.Errorf("reading closing %d: %w", id, interpretError(err))
	}
	return c, nil
}

// Pooler is what stands between the services and PostgreSQL (DATABASE_POOLER):
// nothing, or a pooler in transaction pooling mode such as PgBouncer's
// (docs/capacity.md, "Through a connection pooler").
type Pooler string

const (
	// PoolerNone: every pool connection is a PostgreSQL session of its own.
	PoolerNone Pooler = "none"
	// PoolerTransaction: consecutive transactions of one pool connection may
	// run on different PostgreSQL sessions.
	PoolerTransaction Pooler = "transaction"
)

// ParsePooler reads DATABASE_POOLER; "" is PoolerNone.
func ParsePooler(s string) (Pooler, error) {
	switch Pooler(s) {
	case "", PoolerNone:
		return PoolerNone, nil
	case PoolerTransaction:
		return PoolerTransaction, nil
	}
	return "", fmt.Errorf("DATABASE_POOLER=%q: want none or transaction", s)
}

// OpenPool opens a connection pool on url whose sessions carry appName as their
// application_name (so operators can tell the services' sessions apart in
// pg_stat_activity). maxConns 0 keeps pgx's default; minConns sessions are opened
// ahead, so the first consolidation does not wait for them. A tracer, if given,
// sees every statement of the pool (telemetry.PgxTracer).
//
// Behind a transaction pooler the pool prepares no named statement: pgx's
// default caches each statement prepared in the session, which the next
// transaction may not run on. It caches statement descriptions instead
// (QueryExecModeCacheDescribe): a statement is sent with the unnamed prepared
// statement, parsed and bound in the same message as its execution, and keeps
// pgx's binary formats (docs/capacity.md, "Through a connection pooler").
func OpenPool(ctx context.Context, url string, pooler Pooler, appName string, minConns, maxConns int32, tracer ...pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", redact.Err(err))
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	if pooler == PoolerTransaction {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	if len(tracer) > 0 {
		cfg.ConnConfig.Tracer = tracer[0]
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MinConns = min(minConns, cfg.MaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the database pool: %w", redact.Err(err))
	}
	return pool, nil
}
