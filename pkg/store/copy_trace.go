package store

import (
	"bytes"
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// copyTraced runs a COPY … FROM STDIN of data on conn's underlying connection
// (pgconn's raw COPY, which pgx's tracer does not see) and reports it to the
// connection's tracer as a CopyFrom of table, if the tracer follows COPYs
// (telemetry.PgxTracer does): the result rows' COPYs then show in traces like
// any statement.
func copyTraced(ctx context.Context, conn *pgx.Conn, table string, data []byte, sql string) (pgconn.CommandTag, error) {
	tracer, ok := conn.Config().Tracer.(pgx.CopyFromTracer)
	if !ok {
		return conn.PgConn().CopyFrom(ctx, bytes.NewReader(data), sql)
	}
	ctx = tracer.TraceCopyFromStart(ctx, conn, pgx.TraceCopyFromStartData{TableName: pgx.Identifier{table}})
	tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data), sql)
	tracer.TraceCopyFromEnd(ctx, conn, pgx.TraceCopyFromEndData{CommandTag: tag, Err: err})
	return tag, err
}
