package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/domain"
)

// RunFilter selects runs for ListRuns; a zero field selects every run.
type RunFilter struct {
	ClosingID     int64
	Estado        domain.Estado
	StartedAfter  time.Time // inclusive
	StartedBefore time.Time // exclusive
}

// RunCursor is where a page of ListRuns ends: the last run listed. The zero
// cursor is the first page.
type RunCursor struct {
	StartedAt time.Time
	ID        int64
}

// ListRuns lists at most limit runs that pass the filter, newest first (started_at,
// then id, both descending), after the cursor. The index on (started_at DESC, id
// DESC) serves the order and the cursor; the chunk counts are added up only for
// the runs listed.
func ListRuns(ctx context.Context, q Querier, f RunFilter, after RunCursor, limit int) ([]Run, error) {
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.ClosingID > 0 {
		arg("r.cierre_id = $%d", f.ClosingID)
	}
	if f.Estado != "" {
		arg("r.estado = $%d", f.Estado)
	}
	if !f.StartedAfter.IsZero() {
		arg("r.started_at >= $%d", f.StartedAfter)
	}
	if !f.StartedBefore.IsZero() {
		arg("r.started_at < $%d", f.StartedBefore)
	}
	if after.ID > 0 {
		args = append(args, after.StartedAt, after.ID)
		where = append(where, fmt.Sprintf("(r.started_at, r.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	sql := sqlRunSelect
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	sql += fmt.Sprintf(" ORDER BY r.started_at DESC, r.id DESC LIMIT $%d", len(args))
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("listing consolidations: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("listing consolidations: %w", err)
	}
	return runs, nil
}
