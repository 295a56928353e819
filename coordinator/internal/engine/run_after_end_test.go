package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/synth"
)

// The end of a run is one thing (docs/architecture.md, "The end of a run"): these
// tests drive a small closing through an engine on a real PostgreSQL and Redis,
// with in-process workers, and put a fault at each step of its end — a lease
// heartbeat that finds the run ended and stops the driver, a cancel stored by an
// operator, a crash of the replica — then check that the run ended as the ledger
// says, that its progress and its closing's metrics hash are in Redis, and that
// the end was logged once across the replicas.

// errCrashed is what every store call of a replica that died answers.
var errCrashed = errors.New("replica crashed")

// endStep names a call of a run's end where a fault goes: before or after the
// ledger method of that name.
type endStep struct {
	Method string
	After  bool
}

func (s endStep) String() string {
	if s.After {
		return "after" + s.Method
	}
	return "before" + s.Method
}

// endSteps are the ledger calls of a run's end, in order (finish, then afterEnd).
var endSteps = []endStep{
	{"GetRun", false}, {"GetRun", true},
	{"CheckControlTotals", false}, {"CheckControlTotals", true},
	{"FinishRun", false}, {"FinishRun", true},
	{"ClaimAfterEnd", false}, {"ClaimAfterEnd", true},
	{"EndAfterEnd", false}, {"EndAfterEnd", true},
}

type endFault string

const (
	// faultHeartbeat waits at the step until a lease heartbeat has run and, if it
	// stopped the driver (the run ended: its lease went with it), answers as the
	// database driver does for a call whose context ended meanwhile.
	faultHeartbeat endFault = "heartbeat"
	// faultHeartbeatStops waits at the step until a lease heartbeat has stopped
	// the driver (at a step after the end's commit, the heartbeat finds the run
	// ended) and answers as faultHeartbeat does; it gives up after
	// heartbeatStopsWithin, and the caller checks the driver was stopped.
	faultHeartbeatStops endFault = "heartbeat stops"
	// faultCancel stores a cancel at the step, as an operator's Cancel on any
	// replica does.
	faultCancel endFault = "cancel"
	// faultCrash kills the replica at the step: the call's answer is lost and
	// every later store call fails; another replica carries on.
	faultCrash endFault = "crash"
)

// heartbeatStopsWithin bounds faultHeartbeatStops's wait: many lease
// heartbeats (one every third of testLeaseTTL).
const heartbeatStopsWithin = 10 * time.Second

// faultLedger is a replica's ledger with one fault placed at one step of the
// run's end; armed once every chunk has committed, so the step is the end's.
type faultLedger struct {
	ledger
	pool  *pgxpool.Pool
	step  endStep
	fault endFault
	lease time.Duration
	crash func() // kills the replica (faultCrash)

	// endGate, if set, is waited for before the run's end is recorded.
	endGate <-chan struct{}

	armed atomic.Bool
	fired atomic.Bool
	dead  *atomic.Bool
}

// at runs the fault if the step is this one; a non-nil error replaces the
// call's answer.
func (l *faultLedger) at(ctx context.Context, method string, after bool) error {
	if l.dead.Load() {
		return errCrashed
	}
	if method != l.step.Method || after != l.step.After || !l.armed.Load() || !l.fired.CompareAndSwap(false, true) {
		return nil
	}
	switch l.fault {
	case faultHeartbeat:
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(l.lease):
		}
	case faultHeartbeatStops:
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(heartbeatStopsWithin):
		}
	case faultCancel:
		if _, err := store.RequestCancel(context.Background(), l.pool, runOfTest(ctx), "ops"); err != nil {
			panic(err)
		}
	case faultCrash:
		l.crash()
		return errCrashed
	}
	return nil
}

// call wraps one ledger method with the fault before and after it.
func call[T any](l *faultLedger, ctx context.Context, method string, op func() (T, error)) (T, error) {
	var zero T
	if err := l.at(ctx, method, false); err != nil {
		return zero, err
	}
	v, err := op()
	if ferr := l.at(ctx, method, true); ferr != nil {
		return zero, ferr
	}
	return v, err
}

func (l *faultLedger) GetRun(ctx context.Context, runID int64) (store.Run, error) {
	return call(l, withRun(ctx, runID), "GetRun", func() (store.Run, error) { return l.ledger.GetRun(ctx, runID) })
}

func (l *faultLedger) CheckControlTotals(ctx context.Context, runID int64, split bool) (store.ControlTotals, error) {
	return call(l, withRun(ctx, runID), "CheckControlTotals", func() (store.ControlTotals, error) {
		return l.ledger.CheckControlTotals(ctx, runID, split)
	})
}

func (l *faultLedger) FinishRun(ctx context.Context, rl store.RunLease, o store.RunEnd) (bool, error) {
	if l.endGate != nil && l.armed.Load() {
		<-l.endGate
	}
	return call(l, withRun(ctx, rl.RunID), "FinishRun", func() (bool, error) { return l.ledger.FinishRun(ctx, rl, o) })
}

func (l *faultLedger) ClaimAfterEnd(ctx context.Context, runID int64, owner string, ttl time.Duration) (bool, error) {
	return call(l, withRun(ctx, runID), "ClaimAfterEnd", func() (bool, error) {
		return l.ledger.ClaimAfterEnd(ctx, runID, owner, ttl)
	})
}

func (l *faultLedger) EndAfterEnd(ctx context.Context, runID int64, owner string, done bool) (bool, error) {
	return call(l, withRun(ctx, runID), "EndAfterEnd", func() (bool, error) {
		return l.ledger.EndAfterEnd(ctx, runID, owner, done)
	})
}

// The other calls a dead replica makes fail too.

func (l *faultLedger) alive() error {
	if l.dead.Load() {
		return errCrashed
	}
	return nil
}

func (l *faultLedger) RenewLease(ctx context.Context, rl store.RunLease, ttl time.Duration) (store.LeaseState, error) {
	if err := l.alive(); err != nil {
		return store.LeaseState{}, err
	}
	return l.ledger.RenewLease(ctx, rl, ttl)
}

func (l *faultLedger) ReleaseLease(ctx context.Context, rl store.RunLease) (bool, error) {
	if err := l.alive(); err != nil {
		return false, err
	}
	return l.ledger.ReleaseLease(ctx, rl)
}

func (l *faultLedger) AcquireLease(ctx context.Context, runID int64, owner string, ttl time.Duration) (int64, bool, error) {
	if err := l.alive(); err != nil {
		return 0, false, err
	}
	return l.ledger.AcquireLease(ctx, runID, owner, ttl)
}

func (l *faultLedger) GetMetrics(ctx context.Context, closingID int64) (store.Metrics, error) {
	if err := l.alive(); err != nil {
		return store.Metrics{}, err
	}
	return l.ledger.GetMetrics(ctx, closingID)
}

func (l *faultLedger) Chunks(ctx context.Context, runID int64, limit int, statuses ...domain.ChunkStatus) ([]store.Chunk, error) {
	if err := l.alive(); err != nil {
		return nil, err
	}
	return l.ledger.Chunks(ctx, runID, limit, statuses...)
}

func (l *faultLedger) RunsAwaitingAfterEnd(ctx context.Context, limit int) ([]int64, error) {
	if err := l.alive(); err != nil {
		return nil, err
	}
	return l.ledger.RunsAwaitingAfterEnd(ctx, limit)
}

func (l *faultLedger) UnfinishedRuns(ctx context.Context) ([]store.UnfinishedRun, error) {
	if err := l.alive(); err != nil {
		return nil, err
	}
	return l.ledger.UnfinishedRuns(ctx)
}

// deadProgress is a replica's Redis: it fails once the replica died.
type deadProgress struct {
	progress.Store
	dead *atomic.Bool
}

func (p deadProgress) Publish(ctx context.Context, run progress.Run, done []int, s progress.Snapshot) error {
	if p.dead.Load() {
		return errCrashed
	}
	return p.Store.Publish(ctx, run, done, s)
}

func (p deadProgress) Refresh(ctx context.Context, run progress.Run, s progress.Snapshot) error {
	if p.dead.Load() {
		return errCrashed
	}
	return p.Store.Refresh(ctx, run, s)
}

func (p deadProgress) PublishMetrics(ctx context.Context, run progress.Run, m progress.Metrics) error {
	if p.dead.Load() {
		return errCrashed
	}
	return p.Store.PublishMetrics(ctx, run, m)
}

type runKey struct{}

func withRun(ctx context.Context, runID int64) context.Context {
	return context.WithValue(ctx, runKey{}, runID)
}

func runOfTest(ctx context.Context) int64 { return ctx.Value(runKey{}).(int64) }

// inProcessWorkers are workers inside the test: they consolidate a chunk as a
// worker process does (the ledger's assignment, the sources, the rules, the
// fenced commit) and call committed after each commit.
type inProcessWorkers struct {
	pool      *pgxpool.Pool
	committed func()
}

func (w *inProcessWorkers) Expect(int64, int, int) func() { return func() {} }

func (w *inProcessWorkers) Acquire(ctx context.Context, _ int64, _ int) (workerSlot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return inProcessSlot{w}, nil
}

func (w *inProcessWorkers) Healthy(context.Context) (int, error) { return 1, nil }

type inProcessSlot struct{ w *inProcessWorkers }

func (inProcessSlot) Worker() string { return "in-process" }
func (inProcessSlot) Release(bool)   {}

func (s inProcessSlot) ProcessChunk(ctx context.Context, req dispatch.ChunkRequest) (dispatch.ChunkResult, error) {
	failed := func(err error) (dispatch.ChunkResult, error) {
		return dispatch.ChunkResult{}, &dispatch.CallError{Kind: dispatch.KindOther, Msg: err.Error()}
	}
	a, err := store.GetAssignment(ctx, s.w.pool, req.RunID, req.Index)
	if err != nil {
		return failed(err)
	}
	if a.Token != req.Token {
		return dispatch.ChunkResult{}, &dispatch.CallError{Kind: dispatch.KindStale, Msg: "stale attempt"}
	}
	fromLedger, err := consolidateAndCommit(ctx, s.w.pool, req.RunID, req.Index, req.Token, "in-process")
	if err != nil {
		return failed(err)
	}
	s.w.committed()
	return dispatch.ChunkResult{FromLedger: fromLedger}, nil
}

// logCount counts the "consolidation finished" lines of every replica.
type logCount struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCount) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCount) finished() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Count(c.buf.Bytes(), []byte(`"msg":"consolidation finished"`))
}

func (c *logCount) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// endFixture is a closing of 20 employees in four chunks, its stores, and the
// replicas that drive it.
type endFixture struct {
	t     *testing.T
	pool  *pgxpool.Pool
	redis progress.Store
	// client and prefix read the keys the store wrote.
	client  *redis.Client
	prefix  string
	closing int64
	logs    *logCount
	// watchEvery is the replicas' WatchEvery (0: the default); hold, if set, is
	// waited for after the first chunk commits.
	watchEvery time.Duration
	hold       chan struct{}
	// endGate, if set, is waited for before the run's end is recorded.
	endGate chan struct{}
}

const endChunks = 4

func newEndFixture(t *testing.T) *endFixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	sum, err := synth.Generate(t.Context(), pool, synth.Config{Employees: 20, Seed: 3})
	require.NoError(t, err)
	r := pgtest.NewRedis(t)
	client := r.Client(t)
	return &endFixture{t: t, pool: pool, redis: progress.NewRedisStore(client, r.Prefix, progress.DjangoCache{}),
		client: client, prefix: r.Prefix, closing: sum.ClosingID, logs: &logCount{}}
}

const testLeaseTTL = 150 * time.Millisecond

// replica starts an engine named name; with a step, its ledger carries the fault.
// It returns the engine, its ledger and a function that kills it.
func (f *endFixture) replica(name string, step endStep, fault endFault) (*Engine, *faultLedger) {
	f.t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	dead := &atomic.Bool{}
	l := &faultLedger{ledger: pgStore{pool: f.pool}, pool: f.pool, step: step, fault: fault, lease: testLeaseTTL, dead: dead,
		endGate: f.endGate}
	l.crash = func() {
		dead.Store(true)
		go stop()
	}
	if fault == "" {
		l.fired.Store(true) // no fault
	}
	var commits atomic.Int64
	hold := f.hold
	w := &inProcessWorkers{pool: f.pool, committed: func() {
		n := commits.Add(1)
		if n == 1 && hold != nil {
			<-hold
		}
		if n >= endChunks {
			l.armed.Store(true)
		}
	}}
	logger := slog.New(slog.NewJSONHandler(f.logs, nil)).With("replica", name)
	e, err := newEngine(logger, Config{LeaseTTL: testLeaseTTL, ReconcileEvery: 50 * time.Millisecond,
		RetryBaseDelay: 5 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond, Replica: name, WatchEvery: f.watchEvery},
		l, pgStore{pool: f.pool}, w, deadProgress{Store: f.redis, dead: dead})
	require.NoError(f.t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx)
	}()
	f.t.Cleanup(func() {
		stop()
		<-done
	})
	require.Eventually(f.t, func() bool { // Run has taken its context: runs started now stop with it
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.base != nil
	}, 5*time.Second, time.Millisecond)
	return e, l
}

// start starts the closing's run on e.
func (f *endFixture) start(e *Engine) int64 {
	f.t.Helper()
	st, err := e.Start(f.t.Context(), StartRequest{ClosingID: f.closing, Mode: domain.ModeFull, ChunkSize: 5})
	require.NoError(f.t, err)
	require.Equal(f.t, endChunks, st.TotalChunks)
	return st.ID
}

// endsWhole waits for the run's end and its steps after the end, then checks
// them: the estado on the run and the closing, the progress of every chunk and
// the closing's metrics hash in Redis, and the end logged once (at most once
// when logged says so: a replica that dies after recording the steps done takes
// its log line with it).
func (f *endFixture) endsWhole(runID int64, want domain.Estado, loggedOnce bool) {
	t := f.t
	t.Helper()
	ctx := t.Context()
	var doneAt *time.Time
	require.Eventually(t, func() bool {
		err := f.pool.QueryRow(ctx, "SELECT after_end_done_at FROM consolidation_run WHERE id = $1", runID).Scan(&doneAt)
		return err == nil && doneAt != nil
	}, 15*time.Second, 10*time.Millisecond, "the steps after the run's end were never recorded done\n%s", f.logs)
	run, err := store.GetRun(ctx, f.pool, runID)
	require.NoError(t, err)
	require.True(t, run.Finished())
	require.Equal(t, want, run.Estado, "%s", f.logs)
	var closingEstado string
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT estado FROM nomina_cierrenomina WHERE id = $1", f.closing).Scan(&closingEstado))
	require.Equal(t, string(want), closingEstado)

	snap, ok, err := f.redis.Progress(ctx, runID)
	require.NoError(t, err)
	require.True(t, ok, "progress missing")
	require.Equal(t, snap.TotalChunks, snap.ChunksDone, "progress: %+v", snap)
	// The run's metrics hash (docs/architecture.md, "Exactly once, and faults"): the
	// engine does not read it back.
	metrics, err := f.client.HGetAll(ctx, fmt.Sprintf("%srun:%d:metrics", f.prefix, runID)).Result()
	require.NoError(t, err)
	require.NotEmpty(t, metrics["tiempo_total"], "the closing's metrics hash was not written")

	if loggedOnce { // the line follows the record of the steps done
		require.Eventually(t, func() bool { return f.logs.finished() >= 1 }, 5*time.Second, 5*time.Millisecond, "%s", f.logs)
	}
	require.LessOrEqual(t, f.logs.finished(), 1, "%s", f.logs)
}

func TestRunEndStepsRunOnceWhateverHappensAtEachStep(t *testing.T) {
	t.Parallel()
	for _, fault := range []endFault{faultHeartbeat, faultCancel, faultCrash} {
		for _, step := range endSteps {
			t.Run(fmt.Sprintf("%s/%s", fault, step), func(t *testing.T) {
				t.Parallel()
				f := newEndFixture(t)
				a, la := f.replica("a", step, fault)
				runID := f.start(a)
				want := domain.EstadoConsolidados
				// A cancel stored before the end commits ends the run cancelled;
				// one stored after it changes nothing.
				if fault == faultCancel && !(step.Method == "FinishRun" && step.After) &&
					step.Method != "ClaimAfterEnd" && step.Method != "EndAfterEnd" {
					want = domain.EstadoCancelada
				}
				loggedOnce := true
				if fault == faultCrash {
					require.Eventually(t, la.dead.Load, 15*time.Second, 5*time.Millisecond, "the fault never fired\n%s", f.logs)
					f.replica("b", endStep{}, "") // the survivor
					loggedOnce = !(step.Method == "EndAfterEnd" && step.After)
				}
				f.endsWhole(runID, want, loggedOnce)
				require.True(t, la.fired.Load(), "the fault never fired")
			})
		}
	}
}

// TestRunEndStepsRetriedWhenRedisFails: the steps after the end wait out a Redis
// that cannot be written, and are done (once) when it can.
func TestRunEndStepsRetriedWhenRedisFails(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t)
	down := &atomic.Bool{}
	down.Store(true)
	real := f.redis
	f.redis = deadProgress{Store: real, dead: down}
	a, _ := f.replica("a", endStep{}, "")
	runID := f.start(a)
	require.Eventually(t, func() bool {
		run, err := store.GetRun(t.Context(), f.pool, runID)
		return err == nil && run.Finished()
	}, 15*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { // a few reconciler passes fail meanwhile
		return strings.Count(f.logs.String(), "final progress; the reconciler will retry") >= 3
	}, 15*time.Second, 10*time.Millisecond)
	require.Zero(t, f.logs.finished(), "the end was logged before its steps were done")
	down.Store(false)
	f.redis = real
	f.endsWhole(runID, domain.EstadoConsolidados, true)
}

// TestWatchersSeeTheEndBeforeItsSteps: a watcher gets the final reading as soon as
// the run's end is recorded: it waits neither for the steps after the end (here
// they cannot be done: Redis is down) nor for the watch's next look (an hour here).
// Also when a lease heartbeat stopped the driver between the end's commit and its
// answer (the heartbeat sees the run ended): the driver then does not know it
// recorded the end, and did not wake the watchers (1 run in 3 of the package's
// tests failed so on a slow machine).
func TestWatchersSeeTheEndBeforeItsSteps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		step  endStep
		fault endFault
	}{
		{"answered", endStep{}, ""},
		{"heartbeat after the commit", endStep{"FinishRun", true}, faultHeartbeatStops},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newEndFixture(t)
			down := &atomic.Bool{}
			down.Store(true)
			f.redis = deadProgress{Store: f.redis, dead: down}
			f.watchEvery = time.Hour
			f.hold = make(chan struct{})
			// The end is recorded after the watcher has had its reading of every
			// chunk done: a reading the last chunk's end asked for cannot bring
			// it the end.
			f.endGate = make(chan struct{})
			a, l := f.replica("a", tc.step, tc.fault)
			runID := f.start(a)

			final := make(chan *Report, 1)
			go func() {
				allDone := sync.OnceFunc(func() { close(f.endGate) })
				_ = a.Watch(t.Context(), Ref{RunID: runID}, func(p progress.Snapshot, r *Report) error {
					if r != nil {
						final <- r
					} else if p.TotalChunks > 0 && p.ChunksDone == p.TotalChunks {
						allDone()
					}
					return nil
				})
			}()
			require.Eventually(t, func() bool { return a.watch.size() == 1 }, 5*time.Second, time.Millisecond)
			close(f.hold) // the run goes on to its end, watched
			select {
			case r := <-final:
				require.Equal(t, domain.EstadoConsolidados, r.Run.Estado)
			case <-time.After(15 * time.Second):
				t.Fatalf("the watcher never saw the end\n%s", f.logs)
			}
			require.True(t, l.fired.Load(), "the fault was not injected")
			if tc.fault == faultHeartbeatStops {
				require.Eventually(t, func() bool { return strings.Contains(f.logs.String(), "run's end interrupted") },
					2*heartbeatStopsWithin, 10*time.Millisecond, "the heartbeat did not stop the driver before the end's answer")
			}
			var doneAt *time.Time
			require.NoError(t, f.pool.QueryRow(t.Context(), "SELECT after_end_done_at FROM consolidation_run WHERE id = $1", runID).Scan(&doneAt))
			require.Nil(t, doneAt, "the steps after the end were done with Redis down")
		})
	}
}

// reconcileAtEnd runs a reconciler pass of its engine right after the run's end
// commits, before the driver goes on to the steps after it, and counts the
// claims on those steps made during that pass.
type reconcileAtEnd struct {
	ledger
	e             *Engine
	inPass        atomic.Bool
	passed        atomic.Bool
	claimedInPass atomic.Int32
}

func (l *reconcileAtEnd) FinishRun(ctx context.Context, lease store.RunLease, o store.RunEnd) (bool, error) {
	ok, err := l.ledger.FinishRun(ctx, lease, o)
	if err == nil && ok {
		l.inPass.Store(true)
		l.e.finishEnded(ctx)
		l.inPass.Store(false)
		l.passed.Store(true)
	}
	return ok, err
}

func (l *reconcileAtEnd) ClaimAfterEnd(ctx context.Context, runID int64, owner string, ttl time.Duration) (bool, error) {
	claimed, err := l.ledger.ClaimAfterEnd(ctx, runID, owner, ttl)
	if claimed && l.inPass.Load() {
		l.claimedInPass.Add(1)
	}
	return claimed, err
}

// TestReconcilerLeavesARunsEndToItsDriver: a reconciler pass of the same
// replica that comes between a run's end and its driver's steps after it leaves
// them to the driver (both claim as the replica, so the claim does not keep
// them apart): the steps are done and logged once, by the driver, on the run's
// context — its trace, in a traced coordinator (e2e
// TestOneClosingMakesOneLinkedTrace once logged the end without it).
func TestReconcilerLeavesARunsEndToItsDriver(t *testing.T) {
	t.Parallel()
	f := newDriveFixture(t, 2, 3, 3)
	l := &reconcileAtEnd{ledger: f.ledger}
	e := f.engine("a", l, f.progress)
	l.e = e
	<-e.launch(f.runID, 6).done
	f.settled(domain.EstadoConsolidados)
	require.True(t, l.passed.Load(), "no reconciler pass came between the end and its steps")
	require.Zero(t, l.claimedInPass.Load(), "the reconciler claimed the steps after the end of a run its driver was ending")
}

// noClaim is a ledger on which the steps after a run's end can never be claimed:
// a replica that records the end and dies before those steps.
type noClaim struct{ ledger }

func (noClaim) ClaimAfterEnd(context.Context, int64, string, time.Duration) (bool, error) {
	return false, nil
}

// TestReconcilerDoesTheEndOfARunWaitingForASlot: a run launched here but still
// waiting for a run slot, ended meanwhile by another replica that did not do the
// steps after the end, gets them from this replica's reconciler pass, not only
// once a slot frees (the Redis progress the application reads would wait).
func TestReconcilerDoesTheEndOfARunWaitingForASlot(t *testing.T) {
	t.Parallel()
	f := newDriveFixture(t, 2, 3, 3)
	a := f.engine("a", f.ledger, f.progress) // one run slot (MaxRuns 1)
	require.True(t, a.runs.TryAcquire(), "another run's slot")
	waiting := a.launch(f.runID, 6)
	f.engine("b", noClaim{f.ledger}, f.progress).drive(f.driveCtx, f.runID)
	require.True(t, f.run().Finished(), "%s", f.logs)
	require.False(t, f.ledger.AfterEndDone(f.runID))

	a.finishEnded(t.Context())
	require.True(t, f.ledger.AfterEndDone(f.runID), "the steps after the end waited for the run slot\n%s", f.logs)
	a.runs.Release()
	<-waiting.done
	f.settled(domain.EstadoConsolidados)
}
