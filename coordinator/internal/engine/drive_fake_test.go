package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/engine/ledgertest"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// The drive loop over fakes (docs/architecture.md, "The ledger seam"): the
// in-memory ledger (ledgertest, held to PostgreSQL's behaviour by
// ledger_conformance_test.go), in-process workers that commit into it, and an
// in-memory progress store. Each case drives a run through one replica's
// drive, with a fault at one point, then checks the run's end, its chunks, its
// attempts, and that no employee was counted twice. No process, no database: a
// case takes milliseconds.

// memProgress is the progress store in memory: a run's done chunks and its
// progress, with the Redis store's counting (a chunk counts once, by its done
// chunks; a lost or partial progress is left for Publish).
type memProgress struct {
	mu      sync.Mutex
	done    map[int64]map[int]bool
	runs    map[int64]progress.Snapshot
	metrics map[int64]progress.Metrics
}

func newMemProgress() *memProgress {
	return &memProgress{done: map[int64]map[int]bool{}, runs: map[int64]progress.Snapshot{},
		metrics: map[int64]progress.Metrics{}}
}

func (p *memProgress) Ping(context.Context) error { return nil }

func (p *memProgress) ChunkEnded(_ context.Context, run progress.Run, c progress.ChunkEnd) (first, found bool, _ error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[run.ID] == nil {
		p.done[run.ID] = map[int]bool{}
	}
	s, found := p.runs[run.ID]
	first = !p.done[run.ID][c.Index]
	p.done[run.ID][c.Index] = true
	if !found {
		return first, false, nil
	}
	if first {
		s.EmployeesDone += c.Employees
		s.Records += int64(c.Records)
		s.TotalChunks += c.Halves
	}
	s.ChunksDone = len(p.done[run.ID])
	p.runs[run.ID] = s
	return first, true, nil
}

func (p *memProgress) Publish(_ context.Context, run progress.Run, done []int, s progress.Snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[run.ID] = map[int]bool{}
	for _, c := range done {
		p.done[run.ID][c] = true
	}
	p.runs[run.ID] = s
	return nil
}

func (p *memProgress) Refresh(_ context.Context, run progress.Run, s progress.Snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, ok := p.runs[run.ID]
	if !ok {
		return nil
	}
	cur.Percent, cur.Elapsed, cur.ETA = s.Percent, s.Elapsed, s.ETA
	p.runs[run.ID] = cur
	return nil
}

func (p *memProgress) Progress(_ context.Context, runID int64) (progress.Snapshot, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.runs[runID]
	return s, ok, nil
}

func (p *memProgress) PublishMetrics(_ context.Context, run progress.Run, m progress.Metrics) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metrics[run.ID] = m
	return nil
}

// fakeWorkers are workers that commit into the in-memory ledger, slots at a
// time. answer, when set, sees each call first: an error it returns is the
// call's answer, in place of the commit.
type fakeWorkers struct {
	ledger *ledgertest.Ledger
	slots  chan struct{}
	answer func(ctx context.Context, req dispatch.ChunkRequest, c store.Chunk) error
}

func (w *fakeWorkers) Expect(int64, int, int) func() { return func() {} }

func (w *fakeWorkers) Acquire(ctx context.Context, _ int64, _ int) (workerSlot, error) {
	select {
	case w.slots <- struct{}{}:
		return &fakeSlot{w: w}, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (w *fakeWorkers) Healthy(context.Context) (int, error) { return 1, nil }

type fakeSlot struct {
	w        *fakeWorkers
	released atomic.Bool
}

func (*fakeSlot) Worker() string { return "fake" }

func (s *fakeSlot) Release(bool) {
	if s.released.CompareAndSwap(false, true) {
		<-s.w.slots
	}
}

func (s *fakeSlot) ProcessChunk(ctx context.Context, req dispatch.ChunkRequest) (dispatch.ChunkResult, error) {
	c, err := s.w.ledger.GetChunk(ctx, req.RunID, req.Index)
	if err != nil {
		return dispatch.ChunkResult{}, &dispatch.CallError{Kind: dispatch.KindOther, Msg: err.Error()}
	}
	if s.w.answer != nil {
		if err := s.w.answer(ctx, req, c); err != nil {
			return dispatch.ChunkResult{}, err
		}
	}
	fromLedger, err := s.w.ledger.CommitChunk(ctx, req.RunID, req.Index, req.Token, "fake")
	switch {
	case errors.Is(err, store.ErrStaleAttempt):
		return dispatch.ChunkResult{}, &dispatch.CallError{Kind: dispatch.KindStale, Msg: "stale attempt"}
	case err != nil:
		return dispatch.ChunkResult{}, &dispatch.CallError{Kind: dispatch.KindOther, Msg: err.Error()}
	}
	return dispatch.ChunkResult{FromLedger: fromLedger}, nil
}

// fakeLeaseTTL is the replicas' lease: renewed every third of it, by the real
// clock; it expires only when a case moves the ledger's clock on.
const fakeLeaseTTL = 30 * time.Millisecond

// driveFixture is a run of a closing in the in-memory ledger, and what drives it.
type driveFixture struct {
	t        *testing.T
	clock    *ledgertest.Clock
	ledger   *ledgertest.Ledger
	progress *memProgress
	workers  *fakeWorkers
	logs     *logCount
	ids      []int64 // the closing's libro ids
	closing  int64
	runID    int64
	// driveCtx is the first replica's: a case that kills it cancels it.
	driveCtx context.Context
	// leaseTTL is the replicas' (default fakeLeaseTTL); a case that must
	// see no heartbeat during the run sets it long.
	leaseTTL time.Duration
}

func newDriveFixture(t *testing.T, slots int, sizes ...int) *driveFixture {
	t.Helper()
	clock := ledgertest.NewClock(time.Now())
	l := ledgertest.New(clock)
	n := 0
	for _, s := range sizes {
		n += s
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(1000 + 2*i)
	}
	closing := l.AddClosing(domain.EstadoVerificado, ids)
	runID, err := l.StartRun(t.Context(), newRunOfPlan(closing, domain.EstadoVerificado, planOf(ids, sizes...)))
	require.NoError(t, err)
	return &driveFixture{t: t, clock: clock, ledger: l, progress: newMemProgress(),
		workers: &fakeWorkers{ledger: l, slots: make(chan struct{}, slots)}, logs: &logCount{},
		ids: ids, closing: closing, runID: runID, driveCtx: t.Context(), leaseTTL: fakeLeaseTTL}
}

// engine is a replica named name over l and p, with the fixture's workers.
func (f *driveFixture) engine(name string, l ledger, p progress.Store) *Engine {
	f.t.Helper()
	logger := slog.New(slog.NewJSONHandler(f.logs, nil)).With("replica", name)
	e, err := newEngine(logger, Config{LeaseTTL: f.leaseTTL, RetryBaseDelay: time.Millisecond,
		RetryMaxDelay: 2 * time.Millisecond, Replica: name, MaxRuns: 1}, l, nil, f.workers, p)
	require.NoError(f.t, err)
	return e
}

func (f *driveFixture) run() store.Run {
	f.t.Helper()
	run, err := f.ledger.GetRun(f.t.Context(), f.runID)
	require.NoError(f.t, err)
	return run
}

// attempts counts the dispatches of every chunk of the run.
func (f *driveFixture) attempts() int {
	n := 0
	for i := range f.run().TotalChunks {
		n += len(f.ledger.Attempts(f.runID, i))
	}
	return n
}

// settled checks what every run ends with: the estado on the run and its
// closing, the steps after the end done and logged once, the progress as the
// ledger has it, every employee counted once (consolidated, removed, failed or
// cancelled), a row written at most once for each, and rows left for exactly
// the employees of the succeeded chunks (none when the end removed them).
func (f *driveFixture) settled(want domain.Estado) store.Run {
	t := f.t
	t.Helper()
	ctx := t.Context()
	run := f.run()
	require.True(t, run.Finished(), "%s", f.logs)
	require.Equal(t, want, run.Estado, "%s: %s", run.Error, f.logs)
	require.Equal(t, want, f.ledger.ClosingEstado(f.closing))
	require.True(t, f.ledger.AfterEndDone(f.runID), "the steps after the end were not done\n%s", f.logs)
	require.Equal(t, 1, f.logs.finished(), "%s", f.logs)

	snap, ok, err := f.progress.Progress(ctx, f.runID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, run.TotalChunks, snap.TotalChunks)
	require.Equal(t, run.ChunksSucceeded+run.ChunksFailed+run.ChunksSplit, snap.ChunksDone)
	require.Equal(t, run.EmployeesDone, snap.EmployeesDone)
	require.Equal(t, run.Records, snap.Records)

	require.Equal(t, run.TotalEmployees,
		run.EmployeesDone+run.EmployeesRemoved+run.EmployeesFailed+run.EmployeesCancelled, "every employee counted once")
	chunks, err := f.ledger.Chunks(ctx, f.runID, 0, domain.ChunkSucceeded)
	require.NoError(t, err)
	consolidated := map[int64]bool{}
	for _, c := range chunks {
		for _, id := range f.ids {
			if id >= c.FirstID && id <= c.LastID {
				require.False(t, consolidated[id], "employee %d in two succeeded chunks", id)
				consolidated[id] = true
			}
		}
	}
	for id, n := range f.ledger.Writes(f.closing) {
		require.True(t, n == 1 && consolidated[id], "employee %d: row written %d times, consolidated %t", id, n, consolidated[id])
	}
	rows := f.ledger.Rows(f.closing)
	if run.RowsRemoved {
		require.Empty(t, rows)
	} else {
		require.Len(t, rows, len(consolidated))
		totals, err := f.ledger.CheckControlTotals(ctx, f.runID, false)
		require.NoError(t, err)
		require.True(t, totals.Agree(), "%+v", totals)
		require.Equal(t, totals.Written.LiquidoPagar, run.LiquidoPagar)
	}
	return run
}

// finishCounter counts a replica's FinishRun calls; with cancel, the first one
// stores a cancel first, as an operator's Cancel on any replica does.
type finishCounter struct {
	ledger
	cancel bool
	calls  atomic.Int32
}

func (l *finishCounter) FinishRun(ctx context.Context, rl store.RunLease, o store.RunEnd) (bool, error) {
	if l.calls.Add(1) == 1 && l.cancel {
		if _, err := l.ledger.RequestCancel(ctx, rl.RunID, "ops"); err != nil {
			return false, err
		}
	}
	return l.ledger.FinishRun(ctx, rl, o)
}

type driveCase struct {
	name  string
	slots int   // worker slots (default 1: chunks go one at a time, in order)
	sizes []int // the run's plan
	// arrange places the case's fault and returns the ledger the first
	// replica, "a", drives with.
	arrange func(f *driveFixture) ledger
	// after checks the run once a's drive returned, and carries it on.
	after func(f *driveFixture, l ledger)
	// The run's end: its estado, its chunks by status, its dispatches.
	estado   domain.Estado
	statuses map[domain.ChunkStatus]int
	attempts int
}

var driveCases = []driveCase{
	{
		name: "clean run", slots: 3, sizes: []int{4, 3, 3},
		estado: domain.EstadoConsolidados, statuses: map[domain.ChunkStatus]int{domain.ChunkSucceeded: 3}, attempts: 3,
	},
	{
		// Another replica takes the run over while chunk 1 is on a worker: a
		// stops without ending the run, and b ends it without redoing what a's
		// attempts committed.
		name: "lease lost mid-dispatch", sizes: []int{3, 3, 3, 3},
		arrange: func(f *driveFixture) ledger {
			var once sync.Once
			f.workers.answer = func(ctx context.Context, req dispatch.ChunkRequest, _ store.Chunk) error {
				if req.Index == 1 {
					once.Do(func() {
						f.clock.Advance(time.Hour)
						_, ok, err := f.ledger.AcquireLease(ctx, f.runID, "b", fakeLeaseTTL)
						require.NoError(f.t, err)
						require.True(f.t, ok)
					})
				}
				return nil
			}
			return &finishCounter{ledger: f.ledger}
		},
		after: func(f *driveFixture, l ledger) {
			t := f.t
			require.False(t, f.run().Finished())
			require.Zero(t, l.(*finishCounter).calls.Load(), "a driver that lost its lease tried to end the run")
			owner, _ := f.ledger.Lease(f.runID)
			require.Equal(t, "b", owner)
			require.Equal(t, 2, f.run().ChunksSucceeded, "the chunk in flight at the takeover still commits")
			require.Equal(t, 2, f.attempts(), "nothing dispatched under the lost lease")
			require.Contains(t, f.logs.String(), "run left to the replica that holds its lease")
			f.workers.answer = nil
			f.engine("b", f.ledger, f.progress).drive(t.Context(), f.runID)
		},
		estado: domain.EstadoConsolidados, statuses: map[domain.ChunkStatus]int{domain.ChunkSucceeded: 4}, attempts: 4,
	},
	{
		// A data error on one employee (the 6th) splits its chunk down to it:
		// 4..7 → 4..5 and 6..7 → 4 and 5; 5 alone fails.
		name: "split halves", sizes: []int{4, 4},
		arrange: func(f *driveFixture) ledger {
			poison := f.ids[5]
			f.workers.answer = func(_ context.Context, _ dispatch.ChunkRequest, c store.Chunk) error {
				if c.FirstID <= poison && poison <= c.LastID {
					return &dispatch.CallError{Kind: dispatch.KindDataError, Msg: "bad data"}
				}
				return nil
			}
			return f.ledger
		},
		after: func(f *driveFixture, _ ledger) {
			t := f.t
			for i, want := range []struct {
				status    domain.ChunkStatus
				employees int
				parent    int
			}{{domain.ChunkSucceeded, 4, 0}, {domain.ChunkSplit, 4, 0}, {domain.ChunkSplit, 2, 1},
				{domain.ChunkSucceeded, 2, 1}, {domain.ChunkSucceeded, 1, 2}, {domain.ChunkFailed, 1, 2}} {
				c, err := f.ledger.GetChunk(t.Context(), f.runID, i)
				require.NoError(t, err)
				require.Equal(t, want.status, c.Status, "chunk %d", i)
				require.Equal(t, want.employees, c.Employees, "chunk %d", i)
				require.Equal(t, want.parent, c.ParentIndex, "chunk %d", i)
			}
			require.Equal(t, 7, f.run().EmployeesDone)
			require.Equal(t, 1, f.run().EmployeesFailed)
		},
		estado:   domain.EstadoParcial,
		statuses: map[domain.ChunkStatus]int{domain.ChunkSucceeded: 3, domain.ChunkSplit: 2, domain.ChunkFailed: 1},
		attempts: 6,
	},
	{
		// A cancel stored while the run's end is being recorded: the end is
		// refused and recorded again, cancelled, its rows removed.
		name: "cancel during finish", sizes: []int{5, 5},
		arrange: func(f *driveFixture) ledger { return &finishCounter{ledger: f.ledger, cancel: true} },
		after: func(f *driveFixture, l ledger) {
			require.EqualValues(f.t, 2, l.(*finishCounter).calls.Load(), "the end was not recorded again")
			require.True(f.t, f.run().RowsRemoved)
		},
		estado: domain.EstadoCancelada, statuses: map[domain.ChunkStatus]int{domain.ChunkSucceeded: 2}, attempts: 2,
	},
	{
		// Replica a dies right after the end's commit: the run has ended but
		// nobody did the steps after it, until b's reconciler does them, once.
		name: "crash after the end's commit", sizes: []int{5, 5},
		arrange: func(f *driveFixture) ledger {
			ctx, kill := context.WithCancelCause(f.t.Context())
			f.driveCtx = ctx
			l := &faultLedger{ledger: f.ledger, step: endStep{"FinishRun", true}, fault: faultCrash, dead: &atomic.Bool{}}
			l.crash = func() {
				l.dead.Store(true)
				kill(errEngineStopped)
			}
			l.armed.Store(true)
			return l
		},
		after: func(f *driveFixture, _ ledger) {
			t := f.t
			require.True(t, f.run().Finished(), "the end committed before the crash")
			require.False(t, f.ledger.AfterEndDone(f.runID))
			require.Zero(t, f.logs.finished())
			f.engine("b", f.ledger, f.progress).finishEnded(t.Context())
		},
		estado: domain.EstadoConsolidados, statuses: map[domain.ChunkStatus]int{domain.ChunkSucceeded: 2}, attempts: 2,
	},
	{
		// The coordinator gives up on chunk 0's first call (a timeout) and
		// dispatches it again; the first worker answers late, committing with
		// its revoked token, and is refused.
		name: "worker answers after its attempt was superseded", sizes: []int{5, 5},
		arrange: func(f *driveFixture) ledger {
			var late int64
			f.workers.answer = func(ctx context.Context, req dispatch.ChunkRequest, _ store.Chunk) error {
				switch {
				case req.Index != 0:
				case late == 0:
					late = req.Token
					return &dispatch.CallError{Kind: dispatch.KindTimeout, Msg: "deadline exceeded"}
				default:
					_, err := f.ledger.CommitChunk(ctx, req.RunID, 0, late, "late")
					require.ErrorIs(f.t, err, store.ErrStaleAttempt, "a superseded attempt committed")
				}
				return nil
			}
			return f.ledger
		},
		after: func(f *driveFixture, _ ledger) {
			require.Equal(f.t, []domain.Outcome{domain.OutcomeTimeout, domain.OutcomeCommitted}, f.ledger.Attempts(f.runID, 0))
		},
		estado: domain.EstadoConsolidados, statuses: map[domain.ChunkStatus]int{domain.ChunkSucceeded: 2}, attempts: 3,
	},
	{
		// A cancel revokes chunk 0's attempt while its worker is on it: the
		// worker's commit is refused (the attempt ends stale: no heartbeat
		// beats during the run to stop it first) and the run ends cancelled
		// with nothing written.
		name: "worker answers after a cancel revoked its attempt", sizes: []int{5, 5},
		arrange: func(f *driveFixture) ledger {
			f.leaseTTL = time.Hour
			f.workers.answer = func(ctx context.Context, req dispatch.ChunkRequest, _ store.Chunk) error {
				_, err := f.ledger.RequestCancel(ctx, req.RunID, "ops")
				return err
			}
			return f.ledger
		},
		after: func(f *driveFixture, _ ledger) {
			require.Empty(f.t, f.ledger.Writes(f.closing))
			require.Equal(f.t, []domain.Outcome{domain.OutcomeStale}, f.ledger.Attempts(f.runID, 0))
		},
		estado: domain.EstadoCancelada, statuses: map[domain.ChunkStatus]int{domain.ChunkCancelled: 2}, attempts: 1,
	},
}

// TestDriveLoopOverFakes drives a run through each case's fault over the
// in-memory ledger and workers.
func TestDriveLoopOverFakes(t *testing.T) {
	t.Parallel()
	for _, c := range driveCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newDriveFixture(t, max(c.slots, 1), c.sizes...)
			var l ledger = f.ledger
			if c.arrange != nil {
				l = c.arrange(f)
			}
			f.engine("a", l, f.progress).drive(f.driveCtx, f.runID)
			if c.after != nil {
				c.after(f, l)
			}
			f.settled(c.estado)
			got := map[domain.ChunkStatus]int{}
			chunks, err := f.ledger.Chunks(t.Context(), f.runID, 0)
			require.NoError(t, err)
			for _, ch := range chunks {
				got[ch.Status]++
			}
			require.Equal(t, c.statuses, got)
			require.Equal(t, c.attempts, f.attempts())
		})
	}
}
