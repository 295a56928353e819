package engine

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nominacl/consolidation/pkg/store"
)

// waitOutDB calls op until it succeeds, fails for good, or ctx ends: an error that
// may go away on its own (dbTransient: a restarted or unreachable PostgreSQL, a
// killed session, a deadlock) is retried with exponential backoff and full jitter,
// so a database fault delays the run instead of failing it. The last error is
// returned when ctx ends.
func (e *Engine) waitOutDB(ctx context.Context, log *slog.Logger, step string, op func(ctx context.Context) error) error {
	for try := 1; ; try++ {
		err := op(ctx)
		if err == nil || ctx.Err() != nil || !dbTransient(err) {
			return err
		}
		if try == 1 || try%10 == 0 {
			log.WarnContext(ctx, "database unavailable; retrying", "step", step, "attempt", try, "error", err.Error())
		}
		if !sleepBackoff(ctx, e.cfg.RetryBaseDelay, e.cfg.RetryMaxDelay, try) {
			return err
		}
	}
}

// dbTransient reports whether a database error may go away when tried again: a
// SQLSTATE store.TransientSQLState names, or any error PostgreSQL did not report
// (a connection refused, reset or closed). The store's own refusals, a missing
// row and a context that ended are answers, not faults.
func dbTransient(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, store.ErrLeaseLost), errors.Is(err, store.ErrChunksOpen),
		errors.Is(err, store.ErrCancelRequested), errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrStaleAttempt), errors.Is(err, store.ErrNotSplittable):
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return store.TransientSQLState(pgErr.Code)
	}
	return true
}
