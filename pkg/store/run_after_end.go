package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The steps after a run's end (docs/architecture.md, "The end of a run") are
// claimed by one replica at a time and marked done once they all succeeded, so
// they run exactly once whichever replica sees the end: the driver that recorded
// it, or a reconciler when that driver was cancelled, lost its lease or died
// right after the commit.

// ClaimAfterEnd gives owner the steps after an ended run's end for ttl. ok is
// false when the run has not ended, its steps are done, or another owner's claim
// is still live.
func ClaimAfterEnd(ctx context.Context, q Querier, runID int64, owner string, ttl time.Duration) (ok bool, err error) {
	err = q.QueryRow(ctx, `
		UPDATE consolidation_run SET after_end_claimed_by = $2, after_end_claimed_until = now() + $3::interval
		WHERE id = $1 AND finished_at IS NOT NULL AND after_end_done_at IS NULL
		  AND (after_end_claimed_until IS NULL OR after_end_claimed_until <= now() OR after_end_claimed_by = $2)
		RETURNING true`, runID, owner, ttl).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claiming the steps after the end of consolidation %d: %w", runID, err)
	}
	return true, nil
}

// EndAfterEnd ends owner's claim on a run's steps after its end: done marks them
// done for good, and marked says whether this call did (false when another
// replica marked them first); otherwise the claim is given up, for the next
// reconciler pass to try again.
func EndAfterEnd(ctx context.Context, q Querier, runID int64, owner string, done bool) (marked bool, err error) {
	query, args := `UPDATE consolidation_run SET after_end_claimed_until = NULL
		WHERE id = $1 AND after_end_done_at IS NULL AND after_end_claimed_by = $2`, []any{runID, owner}
	if done {
		query, args = `UPDATE consolidation_run SET after_end_done_at = now(), after_end_claimed_until = NULL
			WHERE id = $1 AND after_end_done_at IS NULL`, args[:1]
	}
	tag, err := q.Exec(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("ending the claim on the steps after the end of consolidation %d: %w", runID, err)
	}
	return done && tag.RowsAffected() == 1, nil
}

// RunsAwaitingAfterEnd lists (oldest first, at most limit) the ended runs whose
// steps after the end are neither done nor claimed by a live claim.
func RunsAwaitingAfterEnd(ctx context.Context, q Querier, limit int) ([]int64, error) {
	rows, err := q.Query(ctx, `SELECT id FROM consolidation_run
		WHERE finished_at IS NOT NULL AND after_end_done_at IS NULL
		  AND (after_end_claimed_until IS NULL OR after_end_claimed_until <= now())
		ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing runs whose end steps are pending: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
