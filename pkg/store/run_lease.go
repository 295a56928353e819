package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLeaseLost means the caller no longer holds the run's lease: another replica
// acquired it (the epoch moved on) or the run has ended. A statement fenced by the
// epoch changed nothing; the caller must stop driving the run.
var ErrLeaseLost = errors.New("run lease lost: another replica owns the run")

// LeaseState is what a renewal learns of the run.
type LeaseState struct {
	CancelRequested bool      // a cancel was stored (by any replica)
	Deadline        time.Time // the run's time limit
}

// AcquireLease makes owner the driver of an unfinished run for ttl when nobody
// holds the run's lease, the lease has expired, owner already holds it, or the
// run is past its deadline by more than ttl (an owner that has not ended it by
// then is stuck: whoever notices ends it). The epoch moves on with every
// acquisition, so whatever the previous holder does next is refused. ok is false
// (and nothing changes) when another replica holds a live lease or the run has
// ended.
func AcquireLease(ctx context.Context, q Querier, runID int64, owner string, ttl time.Duration) (epoch int64, ok bool, err error) {
	err = q.QueryRow(ctx, `
		UPDATE consolidation_run SET lease_owner = $2, lease_epoch = lease_epoch + 1,
			lease_expires_at = now() + $3::interval
		WHERE id = $1 AND finished_at IS NULL
		  AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at <= now()
		       OR deadline + $3::interval <= now())
		RETURNING lease_epoch`, runID, owner, ttl).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("acquiring the lease of consolidation %d: %w", runID, err)
	}
	return epoch, true, nil
}

// RenewLease extends the lease of epoch by ttl from now (the heartbeat) and
// reports whether a cancel was stored. It fails with ErrLeaseLost when the epoch
// has moved on or the run has ended. A lease that expired but that nobody took
// is renewed: the epoch, not the clock, is the fence.
func RenewLease(ctx context.Context, q Querier, runID, epoch int64, ttl time.Duration) (LeaseState, error) {
	var s LeaseState
	err := q.QueryRow(ctx, `
		UPDATE consolidation_run SET lease_expires_at = now() + $3::interval
		WHERE id = $1 AND lease_epoch = $2 AND finished_at IS NULL
		RETURNING cancel_requested_at IS NOT NULL, deadline`, runID, epoch, ttl).
		Scan(&s.CancelRequested, &s.Deadline)
	if errors.Is(err, pgx.ErrNoRows) {
		return LeaseState{}, ErrLeaseLost
	}
	if err != nil {
		return LeaseState{}, fmt.Errorf("renewing the lease of consolidation %d: %w", runID, err)
	}
	return s, nil
}

// ReleaseLease gives up the lease of epoch, so another replica may take the run at
// once instead of waiting for the lease to expire. The epoch stays: a release
// never lets an earlier holder back in. released is false when the epoch had
// already moved on.
func ReleaseLease(ctx context.Context, q Querier, runID, epoch int64) (released bool, err error) {
	tag, err := q.Exec(ctx, `UPDATE consolidation_run SET lease_owner = NULL, lease_expires_at = NULL
		WHERE id = $1 AND lease_epoch = $2`, runID, epoch)
	if err != nil {
		return false, fmt.Errorf("releasing the lease of consolidation %d: %w", runID, err)
	}
	return tag.RowsAffected() == 1, nil
}
