package store

import (
	"context"
	"fmt"
)

// RunTraceparent returns the W3C traceparent stored with a run: the span of the
// call that started it, which whoever drives the run (any replica, after any
// restart) links the run's trace to. "" when the call carried no span.
func RunTraceparent(ctx context.Context, q Querier, runID int64) (string, error) {
	var tp string
	err := q.QueryRow(ctx, "SELECT coalesce(traceparent, '') FROM consolidation_run WHERE id = $1", runID).Scan(&tp)
	if err != nil {
		return "", fmt.Errorf("reading the traceparent of consolidation %d: %w", runID, interpretError(err))
	}
	return tp, nil
}
