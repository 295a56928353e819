package store

import (
	"context"
	"fmt"

	"github.com/nominacl/consolidation/pkg/domain"
)

// EndAttempt records how an attempt ended (committed, stale, error, ...).
func EndAttempt(ctx context.Context, q Querier, runID int64, index, attempt int, outcome domain.Outcome, errText string) error {
	_, err := q.Exec(ctx, `
		UPDATE consolidation_chunk_attempt SET finished_at = now(), outcome = $4, error = nullif($5, '')
		WHERE run_id = $1 AND chunk_index = $2 AND attempt = $3 AND finished_at IS NULL`,
		runID, index, attempt, outcome, errText)
	if err != nil {
		return fmt.Errorf("recording attempt %d of chunk %d of consolidation %d: %w", attempt, index, runID, err)
	}
	return nil
}

// RecordRefusedCommit notes on an attempt that it tried to commit after it had
// been superseded, and was refused.
func RecordRefusedCommit(ctx context.Context, q Querier, runID int64, index int, token int64) error {
	_, err := q.Exec(ctx, `UPDATE consolidation_chunk_attempt SET commit_refused_at = now()
		WHERE run_id = $1 AND chunk_index = $2 AND attempt_token = $3`, runID, index, token)
	if err != nil {
		return fmt.Errorf("recording a refused commit of chunk %d of consolidation %d: %w", index, runID, err)
	}
	return nil
}
