package engine

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/store"
)

// DefaultReadConnsWhileRunning is Config.ReadConnsWhileRunning's default
// (DATABASE_READ_RUNNING_CONNS).
const DefaultReadConnsWhileRunning = 1

// DefaultReadBusyPercentWhileRunning is Config.ReadBusyPercentWhileRunning's
// default (DATABASE_READ_RUNNING_BUSY_PERCENT).
const DefaultReadBusyPercentWhileRunning = 50

// readShare bounds how many statements of the read RPCs run at once on the read
// pool: as many as the pool has connections while no run is in flight, and
// fewer (Config.ReadConnsWhileRunning) while one is. The read pool alone bounds
// how many reads run, not how much of the database's CPU they take from a run on
// a small primary (docs/benchmarks.md, "Reads and junk calls during a run"). A
// run is in flight while this coordinator drives one (or waits to) or while the
// reconciler's last look at the ledger found an unfinished run, whichever
// replica drives it. The share is taken per statement: an export between pages
// holds none, and a statement running when the share shrinks ends as it would.
// While a run is in flight a place is also paced: after a statement that held it
// for d, it stays taken, idle, long enough that statements hold it at most
// busyPercent of the time (50: as long again as d), so a stream of export pages
// cannot keep the database's CPU busy on reads either.
type readShare struct {
	full, running int
	busyPercent   int // 1–100; 100: no pacing

	after func(time.Duration, func()) // time.AfterFunc; tests replace it

	mu      sync.Mutex
	inUse   int
	local   int           // runs this coordinator drives or waits to drive
	ledger  bool          // the reconciler's last look found unfinished runs
	changed chan struct{} // closed (and replaced) when a statement ends or the share grows
}

func newReadShare(full, running, busyPercent int) *readShare {
	running = max(1, min(running, full))
	if busyPercent <= 0 || busyPercent > 100 {
		busyPercent = 100
	}
	return &readShare{full: full, running: running, busyPercent: busyPercent, changed: make(chan struct{}),
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// inFlight says whether a run is in flight; r.mu is held.
func (r *readShare) inFlight() bool { return r.local > 0 || r.ledger }

// limit is the share now; r.mu is held.
func (r *readShare) limit() int {
	if r.inFlight() {
		return r.running
	}
	return r.full
}

// size is how many read statements may run at once now.
func (r *readShare) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limit()
}

// wakeLocked wakes the statements waiting for the share; r.mu is held.
func (r *readShare) wakeLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// acquire waits for a place in the share, or for ctx to end, and says when it
// took it (for release).
func (r *readShare) acquire(ctx context.Context) (time.Time, error) {
	for {
		r.mu.Lock()
		if r.inUse < r.limit() {
			r.inUse++
			r.mu.Unlock()
			return time.Now(), nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return time.Time{}, context.Cause(ctx)
		case <-changed:
		}
	}
}

// release gives back the place taken at taken: at once while no run is in
// flight, else after the pause that keeps it busyPercent busy.
func (r *readShare) release(taken time.Time) {
	held := time.Since(taken)
	r.mu.Lock()
	pause := time.Duration(0)
	if r.inFlight() && r.busyPercent < 100 {
		pause = held * time.Duration(100-r.busyPercent) / time.Duration(r.busyPercent)
	}
	r.mu.Unlock()
	if pause > 0 {
		r.after(pause, r.free)
		return
	}
	r.free()
}

func (r *readShare) free() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inUse--
	r.wakeLocked()
}

// driving counts a run this coordinator starts (+1) or stops (-1) driving.
func (r *readShare) driving(delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.local += delta
	if r.local == 0 {
		r.wakeLocked()
	}
}

// sawLedger records whether the ledger has unfinished runs.
func (r *readShare) sawLedger(unfinished bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ledger = unfinished
	if !unfinished {
		r.wakeLocked()
	}
}

// sharedReads is the read pool seen through a readShare: every statement (a
// query until its rows are closed, a batch until its results are) takes a place
// in the share first.
type sharedReads struct {
	pool  *pgxpool.Pool
	share *readShare
}

var _ store.Querier = sharedReads{}

func (s sharedReads) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	taken, err := s.share.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer s.share.release(taken)
	return s.pool.Exec(ctx, sql, args...)
}

func (s sharedReads) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	taken, err := s.share.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		s.share.release(taken)
		return nil, err
	}
	return &sharedRows{Rows: rows, release: sync.OnceFunc(func() { s.share.release(taken) })}, nil
}

func (s sharedReads) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := s.Query(ctx, sql, args...)
	return sharedRow{rows: rows, err: err}
}

func (s sharedReads) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	taken, err := s.share.acquire(ctx)
	if err != nil {
		return failedBatch{err: err}
	}
	return &sharedBatch{BatchResults: s.pool.SendBatch(ctx, b), release: sync.OnceFunc(func() { s.share.release(taken) })}
}

func (s sharedReads) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	taken, err := s.share.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer s.share.release(taken)
	return s.pool.CopyFrom(ctx, table, columns, src)
}

// sharedRows gives the place back when the rows are closed, or read to their end
// (pgx closes rows itself then, and so does the pool's connection).
type sharedRows struct {
	pgx.Rows
	release func()
}

func (r *sharedRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.release()
	return false
}

func (r *sharedRows) Close() {
	r.Rows.Close()
	r.release()
}

// sharedRow is QueryRow's answer over sharedRows: Scan reads the first row and
// closes the rows, as pgx's own does.
type sharedRow struct {
	rows pgx.Rows
	err  error
}

func (r sharedRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

type sharedBatch struct {
	pgx.BatchResults
	release func()
}

func (b *sharedBatch) Close() error {
	defer b.release()
	return b.BatchResults.Close()
}

// failedBatch answers every read of a batch that never got a place in the share.
type failedBatch struct{ err error }

func (b failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b failedBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b failedBatch) QueryRow() pgx.Row                { return sharedRow{err: b.err} }
func (b failedBatch) Close() error                     { return b.err }
func (b failedBatch) Tx() pgx.Tx                       { return nil }
