package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

// inUseNow is how many places of the share are taken.
func (r *readShare) inUseNow() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inUse
}

// tryAcquire takes a place only if one is free now: a context already ended
// makes acquire answer at once when it would wait.
func tryAcquire(r *readShare) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.acquire(ctx)
	return err == nil
}

// give ends a statement that took its place just now.
func give(r *readShare) { r.release(time.Now()) }

func TestReadShareShrinksWhileRunsAreInFlight(t *testing.T) {
	r := newReadShare(4, 1, 100)
	require.Equal(t, 4, r.size(), "no run in flight: the whole read pool")
	for i := range 4 {
		require.True(t, tryAcquire(r), "statement %d of 4 with no run in flight", i+1)
	}
	require.False(t, tryAcquire(r), "a fifth statement waits")

	// A run starts here while three statements still run: they end as they would,
	// and no other starts until fewer than the running share remain.
	give(r)
	r.driving(1)
	require.Equal(t, 1, r.size())
	require.False(t, tryAcquire(r), "3 statements in flight, share 1")
	give(r)
	give(r)
	require.False(t, tryAcquire(r), "1 statement in flight, share 1")
	give(r)
	require.True(t, tryAcquire(r))
	require.False(t, tryAcquire(r))

	// A waiting statement gets in when the run ends here, while the ledger shows none.
	got := make(chan error, 1)
	go func() {
		_, err := r.acquire(context.Background())
		got <- err
	}()
	r.driving(-1)
	require.NoError(t, <-got)
	require.Equal(t, 4, r.size())
	require.Equal(t, 2, r.inUseNow())

	// Another replica's run, seen in the ledger, shrinks it as well.
	r.sawLedger(true)
	require.Equal(t, 1, r.size())
	require.False(t, tryAcquire(r))
	r.driving(1)
	r.sawLedger(false)
	require.Equal(t, 1, r.size(), "still driving one here")
	r.driving(-1)
	require.Equal(t, 4, r.size())
	require.True(t, tryAcquire(r))
	require.Equal(t, 3, r.inUseNow())
}

func TestReadShareNeverExceedsThePool(t *testing.T) {
	r := newReadShare(2, 5, 100)
	r.driving(1)
	require.Equal(t, 2, r.size())
	r = newReadShare(2, 0, 100)
	r.driving(1)
	require.Equal(t, 1, r.size())
}

func TestReadShareWaitEndsWithItsContext(t *testing.T) {
	r := newReadShare(1, 1, 100)
	require.True(t, tryAcquire(r))
	ctx, cancel := context.WithCancelCause(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := r.acquire(ctx)
		got <- err
	}()
	stop := errors.New("the caller went away")
	cancel(stop)
	require.ErrorIs(t, <-got, stop)
	require.Equal(t, 1, r.inUseNow(), "the abandoned wait took no place")
}

// Every way the store reads gives its place back: rows closed, rows read to
// their end, a row scanned or missing, a batch closed, an exec.
func TestSharedReadsGiveTheirPlaceBack(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.NewPool(t)
	share := newReadShare(1, 1, 100)
	q := sharedReads{pool: pool, share: share}
	free := func(what string) {
		t.Helper()
		require.Equal(t, 0, share.inUseNow(), "after %s", what)
	}

	rows, err := q.Query(ctx, "SELECT generate_series(1, 3)")
	require.NoError(t, err)
	require.Equal(t, 1, share.inUseNow(), "rows open")
	require.True(t, rows.Next())
	rows.Close()
	rows.Close()
	free("rows closed early, twice")

	rows, err = q.Query(ctx, "SELECT generate_series(1, 3)")
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 3, n)
	free("rows read to their end")
	rows.Close()
	free("rows read to their end, then closed")

	vals, err := q.Query(ctx, "SELECT generate_series(1, 2)")
	require.NoError(t, err)
	got, err := pgx.CollectRows(vals, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2}, got)
	free("rows collected")

	var one int
	require.NoError(t, q.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
	free("a row scanned")
	require.ErrorIs(t, q.QueryRow(ctx, "SELECT 1 WHERE false").Scan(&one), pgx.ErrNoRows)
	free("no row")
	require.Error(t, q.QueryRow(ctx, "SELECT 1/0").Scan(&one))
	free("a failing statement")

	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT 2")
	br := q.SendBatch(ctx, b)
	require.Equal(t, 1, share.inUseNow(), "batch open")
	require.NoError(t, br.QueryRow().Scan(&one))
	require.NoError(t, br.Close())
	free("a batch closed")

	_, err = q.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	free("an exec")

	// With the one place taken, a read waits for it; its context ends the wait.
	require.True(t, tryAcquire(share))
	ended, cancel := context.WithCancel(ctx)
	cancel()
	_, err = q.Query(ended, "SELECT 1")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, q.QueryRow(ended, "SELECT 1").Scan(&one), context.Canceled)
	require.ErrorIs(t, q.SendBatch(ended, &pgx.Batch{}).Close(), context.Canceled)
	give(share)
	free("the waits that ended")
}

// While a run is in flight a statement's place stays taken after it, idle, for
// as long again as the statement held it (50 %); with no run in flight, or at
// 100 %, it is given back at once.
func TestReadShareIsPacedWhileRunsAreInFlight(t *testing.T) {
	for _, tc := range []struct {
		name      string
		percent   int
		running   bool
		wantPause func(held time.Duration) time.Duration
	}{
		{"no run", 50, false, func(time.Duration) time.Duration { return 0 }},
		{"a run, 50 %", 50, true, func(held time.Duration) time.Duration { return held }},
		{"a run, 25 %", 25, true, func(held time.Duration) time.Duration { return 3 * held }},
		{"a run, 100 %", 100, true, func(time.Duration) time.Duration { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReadShare(2, 1, tc.percent)
			var paused []time.Duration
			var pending []func()
			r.after = func(d time.Duration, f func()) {
				paused = append(paused, d)
				pending = append(pending, f)
			}
			if tc.running {
				r.driving(1)
			}
			taken, err := r.acquire(context.Background())
			require.NoError(t, err)
			held := 40 * time.Millisecond
			r.release(taken.Add(-held)) // as if the statement had held it 40 ms longer
			if tc.wantPause(held) == 0 {
				require.Empty(t, paused)
				require.Zero(t, r.inUseNow(), "given back at once")
				return
			}
			require.Len(t, paused, 1)
			// The place was held at least 40 ms (more by however long the test took).
			require.GreaterOrEqual(t, paused[0], tc.wantPause(held))
			require.Equal(t, 1, r.inUseNow(), "idle but still taken")
			require.False(t, tryAcquire(r), "the paced place is not free")
			pending[0]()
			require.Zero(t, r.inUseNow())
			require.True(t, tryAcquire(r))
		})
	}
}

// The engine's store sends a read RPC's statements (a context marked
// ForReading) through the share, and run driving's around it.
func TestReadRPCStatementsGoThroughTheShare(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.NewPool(t)
	share := newReadShare(1, 1, 100)
	db := pgStore{pool: pool, reads: pool, share: share}
	require.True(t, tryAcquire(share)) // the one place is taken
	// The wait's own cause, which pgx would not give: the read was stopped
	// waiting for the share, not by the database.
	waited := errors.New("stopped waiting for the read share")
	ended, cancel := context.WithCancelCause(ForReading(ctx))
	cancel(waited)
	_, err := db.GetClosing(ended, 1)
	require.ErrorIs(t, err, waited, "a read waited for the share")
	_, err = db.GetClosing(ctx, 1)
	require.ErrorIs(t, err, store.ErrNotFound, "run driving does not wait for the share")
	give(share)
	_, err = db.GetClosing(ForReading(ctx), 1)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Zero(t, share.inUseNow())
}
