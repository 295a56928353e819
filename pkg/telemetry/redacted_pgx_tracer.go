package telemetry

import (
	"context"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/redact"
)

// redactedPgxTracer is otelpgx's tracer with every error it is handed made safe
// (redact.Err) first, so a span's status and exception event never carry a
// PostgreSQL message; errors.As still finds the *pgconn.PgError, so the span
// keeps its SQLSTATE attribute.
type redactedPgxTracer struct{ *otelpgx.Tracer }

func (t redactedPgxTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TraceQueryEnd(ctx, conn, data)
}

func (t redactedPgxTracer) TraceCopyFromEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TraceCopyFromEnd(ctx, conn, data)
}

func (t redactedPgxTracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TraceBatchQuery(ctx, conn, data)
}

func (t redactedPgxTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TraceBatchEnd(ctx, conn, data)
}

func (t redactedPgxTracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TraceConnectEnd(ctx, data)
}

func (t redactedPgxTracer) TracePrepareEnd(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareEndData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TracePrepareEnd(ctx, conn, data)
}

func (t redactedPgxTracer) TraceAcquireEnd(ctx context.Context, pool *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	data.Err = redact.Err(data.Err)
	t.Tracer.TraceAcquireEnd(ctx, pool, data)
}
