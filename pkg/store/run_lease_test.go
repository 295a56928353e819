package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

const leaseTTL = time.Minute

// lease makes owner the holder of a run's lease and returns its epoch.
func lease(t *testing.T, pool *pgxpool.Pool, runID int64, owner string) int64 {
	t.Helper()
	epoch, ok, err := store.AcquireLease(t.Context(), pool, runID, owner, leaseTTL)
	require.NoError(t, err)
	require.True(t, ok, "%s could not acquire the lease of run %d", owner, runID)
	return epoch
}

// leaseRow is the lease columns of a run.
type leaseRow struct {
	Owner   string
	Epoch   int64
	Expired bool
}

func leaseOf(t *testing.T, pool *pgxpool.Pool, runID int64) leaseRow {
	t.Helper()
	var l leaseRow
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT coalesce(lease_owner, ''), lease_epoch,
		coalesce(lease_expires_at <= now(), true) FROM consolidation_run WHERE id = $1`, runID).Scan(&l.Owner, &l.Epoch, &l.Expired))
	return l
}

// expireLease moves a run's lease expiry into the past, as if its holder had
// stopped renewing it.
func expireLease(t *testing.T, pool *pgxpool.Pool, runID int64) {
	t.Helper()
	_, err := pool.Exec(t.Context(), "UPDATE consolidation_run SET lease_expires_at = now() - interval '1 second' WHERE id = $1", runID)
	require.NoError(t, err)
}

func TestAcquireLease(t *testing.T) {
	t.Parallel()

	t.Run("FreeLeaseGoesToTheOwnerWithTheNextEpoch", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		epoch, ok, err := store.AcquireLease(t.Context(), pool, runID, "replica-a", leaseTTL)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(1), epoch)
		require.Equal(t, leaseRow{Owner: "replica-a", Epoch: 1}, leaseOf(t, pool, runID))
	})
	t.Run("RefusedWhileAnotherHoldsALiveLease", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		lease(t, pool, runID, "replica-a")
		_, ok, err := store.AcquireLease(t.Context(), pool, runID, "replica-b", leaseTTL)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, leaseRow{Owner: "replica-a", Epoch: 1}, leaseOf(t, pool, runID))
	})
	t.Run("ExpiredLeaseIsTakenOverWithTheNextEpoch", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		lease(t, pool, runID, "replica-a")
		expireLease(t, pool, runID)
		require.Equal(t, int64(2), lease(t, pool, runID, "replica-b"))
		require.Equal(t, leaseRow{Owner: "replica-b", Epoch: 2}, leaseOf(t, pool, runID))
	})
	t.Run("HolderAcquiringAgainMovesTheEpochOn", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		lease(t, pool, runID, "replica-a")
		require.Equal(t, int64(2), lease(t, pool, runID, "replica-a"))
	})
	t.Run("RunOverdueIsTakenFromALiveHolder", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		lease(t, pool, runID, "replica-a")
		_, err := pool.Exec(t.Context(), "UPDATE consolidation_run SET deadline = now() - interval '2 minutes' WHERE id = $1", runID)
		require.NoError(t, err)
		require.Equal(t, int64(2), lease(t, pool, runID, "replica-b"))
	})
	t.Run("RefusedForFinishedRun", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		finish(t, pool, runID, domain.EstadoCancelada, true)
		_, ok, err := store.AcquireLease(t.Context(), pool, runID, "replica-a", leaseTTL)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, leaseRow{Epoch: 0, Expired: true}, leaseOf(t, pool, runID))
	})
}

func TestRenewLease(t *testing.T) {
	t.Parallel()

	t.Run("ExtendsTheLeaseAndReportsTheRun", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		epoch := lease(t, pool, runID, "replica-a")
		expireLease(t, pool, runID)
		s, err := store.RenewLease(t.Context(), pool, runID, epoch, leaseTTL)
		require.NoError(t, err)
		require.False(t, s.CancelRequested)
		require.Equal(t, getRun(t, pool, runID).Deadline, s.Deadline)
		require.Equal(t, leaseRow{Owner: "replica-a", Epoch: epoch}, leaseOf(t, pool, runID),
			"an expired lease nobody took is renewed with the same epoch")
	})
	t.Run("ReportsACancelStoredByAnyReplica", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		epoch := lease(t, pool, runID, "replica-a")
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		s, err := store.RenewLease(t.Context(), pool, runID, epoch, leaseTTL)
		require.NoError(t, err)
		require.True(t, s.CancelRequested)
	})
	t.Run("LostOnceAnotherReplicaTookOver", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		epoch := lease(t, pool, runID, "replica-a")
		expireLease(t, pool, runID)
		lease(t, pool, runID, "replica-b")
		_, err := store.RenewLease(t.Context(), pool, runID, epoch, leaseTTL)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.Equal(t, leaseRow{Owner: "replica-b", Epoch: epoch + 1}, leaseOf(t, pool, runID))
	})
	t.Run("LostOnceTheRunEnded", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		epoch := lease(t, pool, runID, "replica-a")
		finished, err := store.FinishRun(t.Context(), pool, runID, epoch,
			store.RunEnd{Estado: domain.EstadoTimeout, RemoveRows: true, Interrupted: true})
		require.NoError(t, err)
		require.True(t, finished)
		_, err = store.RenewLease(t.Context(), pool, runID, epoch, leaseTTL)
		require.ErrorIs(t, err, store.ErrLeaseLost)
	})
}

func TestReleaseLease(t *testing.T) {
	t.Parallel()

	t.Run("AnotherReplicaMayTakeTheRunAtOnce", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		epoch := lease(t, pool, runID, "replica-a")
		released, err := store.ReleaseLease(t.Context(), pool, runID, epoch)
		require.NoError(t, err)
		require.True(t, released)
		require.Equal(t, leaseRow{Epoch: epoch, Expired: true}, leaseOf(t, pool, runID))
		require.Equal(t, epoch+1, lease(t, pool, runID, "replica-b"))
	})
	t.Run("AnEarlierEpochReleasesNothing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		first := lease(t, pool, runID, "replica-a")
		expireLease(t, pool, runID)
		lease(t, pool, runID, "replica-b")
		released, err := store.ReleaseLease(t.Context(), pool, runID, first)
		require.NoError(t, err)
		require.False(t, released)
		require.Equal(t, leaseRow{Owner: "replica-b", Epoch: first + 1}, leaseOf(t, pool, runID))
	})
}

// TestLostLeaseChangesNothing: a replica whose lease another took over can no
// longer dispatch, fail a chunk, finish or abort the run.
func TestLostLeaseChangesNothing(t *testing.T) {
	t.Parallel()

	// takenOver is a run whose chunk 0 replica-a dispatched with its epoch before
	// replica-b took the lease over; it returns replica-a's epoch and token.
	takenOver := func(t *testing.T) (*pgxpool.Pool, int64, int64, int64) {
		t.Helper()
		pool, runID := newLedger(t)
		epoch := lease(t, pool, runID, "replica-a")
		token := newToken()
		_, ok, err := store.DispatchChunk(t.Context(), pool, runID, epoch, 0, token, "worker-a")
		require.NoError(t, err)
		require.True(t, ok)
		expireLease(t, pool, runID)
		lease(t, pool, runID, "replica-b")
		return pool, runID, epoch, token
	}

	t.Run("Dispatch", func(t *testing.T) {
		t.Parallel()
		pool, runID, epoch, token := takenOver(t)
		_, ok, err := store.DispatchChunk(t.Context(), pool, runID, epoch, 1, newToken(), "worker-a")
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.False(t, ok)
		require.Equal(t, domain.ChunkPending, chunkOf(t, pool, runID, 1).Status)
		require.Empty(t, attemptsOf(t, pool, runID, 1))
		_, _, err = store.DispatchChunk(t.Context(), pool, runID, epoch, 0, newToken(), "worker-a")
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.Equal(t, token, tokenOf(t, pool, runID, 0))
	})
	t.Run("FailChunk", func(t *testing.T) {
		t.Parallel()
		pool, runID, epoch, token := takenOver(t)
		failed, err := store.FailChunk(t.Context(), pool, runID, epoch, 0, token, "gave up")
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.False(t, failed)
		require.Equal(t, domain.ChunkRunning, chunkOf(t, pool, runID, 0).Status)
	})
	t.Run("FinishRun", func(t *testing.T) {
		t.Parallel()
		pool, runID, epoch, token := takenOver(t)
		finished, err := store.FinishRun(t.Context(), pool, runID, epoch,
			store.RunEnd{Estado: domain.EstadoError, Error: "0 of 2", RemoveRows: true, Interrupted: true})
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.False(t, finished)
		require.False(t, getRun(t, pool, runID).Finished())
		require.Equal(t, domain.EstadoConsolidando, estadoOf(t, pool, 7))
		require.Equal(t, token, tokenOf(t, pool, runID, 0), "the new holder's attempts may still commit")
	})
	t.Run("AbortRun", func(t *testing.T) {
		t.Parallel()
		pool, runID, epoch, _ := takenOver(t)
		aborted, err := store.AbortRun(t.Context(), pool, runID, epoch, "late")
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.False(t, aborted)
		require.False(t, getRun(t, pool, runID).Finished())
	})
	t.Run("TheNewHolderMayDoAllOfIt", func(t *testing.T) {
		t.Parallel()
		pool, runID, epoch, _ := takenOver(t)
		now := epoch + 1
		token := newToken()
		_, ok, err := store.DispatchChunk(t.Context(), pool, runID, now, 0, token, "worker-b")
		require.NoError(t, err)
		require.True(t, ok)
		failed, err := store.FailChunk(t.Context(), pool, runID, now, 0, token, "gave up")
		require.NoError(t, err)
		require.True(t, failed)
		finished, err := store.FinishRun(t.Context(), pool, runID, now,
			store.RunEnd{Estado: domain.EstadoCancelada, RemoveRows: true, Interrupted: true})
		require.NoError(t, err)
		require.True(t, finished)
	})
}

func TestFinishRunRefusesAnEndItCannotBe(t *testing.T) {
	t.Parallel()

	for _, open := range []struct {
		name  string
		setup func(t *testing.T, pool *pgxpool.Pool, runID int64)
	}{
		{"Pending", func(t *testing.T, pool *pgxpool.Pool, runID int64) {}},
		{"Running", func(t *testing.T, pool *pgxpool.Pool, runID int64) { dispatch(t, pool, runID, 1) }},
	} {
		t.Run("ChunkStill"+open.name, func(t *testing.T) {
			t.Parallel()
			pool, runID := newLedger(t)
			dispatchAndCommit(t, pool, runID, 0)
			open.setup(t, pool, runID)
			before := chunkOf(t, pool, runID, 1)
			finished, err := store.FinishRun(t.Context(), pool, runID, noLease,
				store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 2 chunks failed"})
			require.ErrorIs(t, err, store.ErrChunksOpen)
			require.False(t, finished)
			require.False(t, getRun(t, pool, runID).Finished())
			require.Equal(t, before, chunkOf(t, pool, runID, 1))
			require.Equal(t, domain.EstadoConsolidando, estadoOf(t, pool, 7))
			requireRowsOfRun(t, pool, runID, 1, 5)
		})
	}
	t.Run("NormalEndRefusedOnceACancelIsStored", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 1)
		_, err := store.RequestCancel(t.Context(), pool, runID, "")
		require.NoError(t, err)
		finished, err := store.FinishRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoConsolidados})
		require.ErrorIs(t, err, store.ErrCancelRequested)
		require.False(t, finished)
		require.False(t, getRun(t, pool, runID).Finished())
		finish(t, pool, runID, domain.EstadoCancelada, true)
		requireRowsOfRun(t, pool, runID, 0, 0)
	})
	t.Run("EveryChunkEndedFinishes", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		failed, err := store.FailChunk(t.Context(), pool, runID, noLease, 1, dispatch(t, pool, runID, 1), "bad data")
		require.NoError(t, err)
		require.True(t, failed)
		finished, err := store.FinishRun(t.Context(), pool, runID, noLease, store.RunEnd{Estado: domain.EstadoParcial})
		require.NoError(t, err)
		require.True(t, finished)
	})
}

// TestDispatchSerializesWithCancel: a dispatch and a cancel of the same run take
// turns on the run's row, so a dispatch racing a cancel never leaves a live token.
func TestDispatchSerializesWithCancel(t *testing.T) {
	t.Parallel()

	t.Run("DispatchWaitingOnACancelHandsOutNothing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		// The cancel's transaction has marked the run and holds its row.
		tx, err := pool.Begin(t.Context())
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(t.Context())) }()
		_, err = tx.Exec(t.Context(), "UPDATE consolidation_run SET cancel_requested_at = now() WHERE id = $1", runID)
		require.NoError(t, err)

		type result struct {
			ok  bool
			err error
		}
		done := make(chan result, 1)
		go func() {
			_, ok, err := store.DispatchChunk(t.Context(), pool, runID, noLease, 0, newToken(), "worker-a")
			done <- result{ok, err}
		}()
		waitForLockWait(t, pool)
		require.NoError(t, tx.Commit(t.Context()))
		r := <-done
		require.NoError(t, r.err)
		require.False(t, r.ok, "a dispatch after the cancel handed out a token")
		require.Zero(t, tokenOf(t, pool, runID, 0))
		require.Empty(t, attemptsOf(t, pool, runID, 0))
	})
	t.Run("CancelWaitsForADispatchInProgressAndRevokesItsToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		tx, err := pool.Begin(t.Context())
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(t.Context())) }()
		_, ok, err := store.DispatchChunk(t.Context(), tx, runID, noLease, 0, newToken(), "worker-a")
		require.NoError(t, err)
		require.True(t, ok)

		done := make(chan error, 1)
		go func() {
			_, err := store.RequestCancel(t.Context(), pool, runID, "")
			done <- err
		}()
		waitForLockWait(t, pool)
		require.NoError(t, tx.Commit(t.Context()))
		require.NoError(t, <-done)
		require.Zero(t, tokenOf(t, pool, runID, 0), "the dispatched token outlived the cancel")
	})
}

// waitForLockWait waits until a session of the test's database waits for a lock.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var waiting int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting > 0
	}, 10*time.Second, 5*time.Millisecond, "no session waits for the run's row")
}
