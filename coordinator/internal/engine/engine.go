// Package engine runs consolidations: it validates and plans a run, stores it
// durably, drives its chunks through the worker pool, folds the chunk summaries
// into the closing's final estado and metrics, and resumes runs left unfinished by
// a coordinator that stopped.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/telemetry"
)

// Defaults of Config: each is the one place the setting's default is written;
// the coordinator's main reads the environment with them.
const (
	DefaultChunkHardTimeout = 600 * time.Second // the old Celery design's hard limit
	DefaultRunTimeout       = 2 * time.Hour
	DefaultMaxAttempts      = 4
	DefaultBusyBudget       = 5 * time.Minute
	DefaultRetryBaseDelay   = 200 * time.Millisecond
	DefaultRetryMaxDelay    = 5 * time.Second
	DefaultReconcileEvery   = 2 * time.Second
	DefaultWatchEvery       = 500 * time.Millisecond
	DefaultLeaseTTL         = 10 * time.Second
	// KeyTTL's default is RunTimeout + KeyTTLMargin.
	KeyTTLMargin = 24 * time.Hour
	// DefaultPoolConns is the size of the coordinator's PostgreSQL pool
	// (DATABASE_MAX_CONNS), from which MaxRuns is derived.
	DefaultPoolConns = 16
	// ReservedConns are the pool connections not counted for driven runs: chunk
	// dispatches and attempt records, the API (Consolidate, GetConsolidation,
	// watch streams), the reconciler and the one run at a time that ends after a
	// cancel while it waited for a slot share them, each statement holding one
	// briefly. Every other connection is counted for one driven run: its driver
	// holds at most one connection at a time, briefly (the lease heartbeat, the control
	// totals, the run's end), but two at once for the control totals of a run of
	// store.SplitControlTotalsFrom employees or more, each for a fraction of a
	// second (docs/architecture.md, "Many runs at once").
	ReservedConns = 2
	// MaxStarting is how many starts (Consolidate calls) check and plan their
	// closing at once on a coordinator; the others wait in the start lane, and the
	// smallest closing waiting goes next (docs/architecture.md, "Many runs at
	// once"). The work is PostgreSQL's, a pass or two over each closing's
	// employees: a few at once keep its cores busy.
	MaxStarting = 4
)

// MaxRunsForPool is the number of runs a pool of conns connections can drive at
// once: every connection but the ReservedConns. Less than 1 means the pool is too
// small.
func MaxRunsForPool(conns int32) int { return int(conns) - ReservedConns }

// Config configures an Engine.
type Config struct {
	// DefaultPolicy plans runs whose request names no policy (default: domain.DefaultPolicy).
	DefaultPolicy domain.Policy
	// ChunkHardTimeout is the deadline of one ProcessChunk call; past it the attempt
	// is abandoned and the chunk re-dispatched (default: DefaultChunkHardTimeout, 600s).
	ChunkHardTimeout time.Duration
	// RunTimeout bounds a whole run; past it the run ends timeout_consolidacion
	// (default: DefaultRunTimeout, 2h).
	RunTimeout time.Duration
	// MaxAttempts bounds the dispatches of one chunk that reach a worker and fail
	// (default: DefaultMaxAttempts, 4).
	MaxAttempts int
	// BusyBudget bounds how long, in a row, a chunk is re-dispatched to workers that
	// are busy or cannot be reached; those calls do not count toward MaxAttempts
	// (default: DefaultBusyBudget, 5m).
	BusyBudget time.Duration
	// RetryBaseDelay is the first retry's backoff, doubled each time up to
	// RetryMaxDelay, with full jitter (defaults: DefaultRetryBaseDelay, 200ms;
	// DefaultRetryMaxDelay, 5s).
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// ReconcileEvery is how often unfinished runs are looked for and Redis progress
	// checked (default: DefaultReconcileEvery, 2s).
	ReconcileEvery time.Duration
	// WatchEvery is how often WatchConsolidation looks for progress it was not told
	// about (default: DefaultWatchEvery, 500ms).
	WatchEvery time.Duration
	// KeyTTL is the lifetime of a run's Redis keys, longer than any run
	// (default: RunTimeout + KeyTTLMargin, 24h).
	KeyTTL time.Duration
	// LeaseTTL is how long this replica's hold on a run it drives lasts without a
	// renewal; the driver renews it every third of that, and another replica takes
	// the run over once it has expired (default: DefaultLeaseTTL, 10s).
	LeaseTTL time.Duration
	// Replica names this coordinator process in run leases; it must differ between
	// processes (default: the host name, the process id and a random suffix).
	Replica string
	// MaxRuns bounds the runs driven at once; more wait for a slot, the earliest
	// started first (default: MaxRunsForPool of the pool's size; never more).
	MaxRuns int
	// ReadConnsWhileRunning is how many statements of the read RPCs run at once
	// on the read pool while a run is in flight, here or on another replica; the
	// pool's whole size while none is (default: DefaultReadConnsWhileRunning, 1;
	// never more than the read pool's size). See readShare.
	ReadConnsWhileRunning int
	// ReadBusyPercentWhileRunning paces the read pool's statements while a run is
	// in flight: a place of the share is held by statements at most this percent
	// of the time, idle the rest (default: DefaultReadBusyPercentWhileRunning, 50;
	// 100: no pacing). See readShare.
	ReadBusyPercentWhileRunning int
}

// Engine runs consolidations.
type Engine struct {
	logger   *slog.Logger
	cfg      Config
	ledger   ledger
	closings closings
	records  records // nil in tests that build the engine over fakes
	workers  workers
	progress progress.Store

	// runs are the slots of driven runs (MaxRuns); ends is the one slot of a run
	// that is ended after a cancel while it waited in runs, so that its quick end
	// does not wait behind long runs.
	runs, ends *runSlots
	// starts is the start lane: at most MaxStarting starts check and plan their
	// closing at once, the smallest closing first.
	starts *runSlots

	mu     sync.Mutex
	base   context.Context // Run's context: runs stop (to be resumed) when it ends
	active map[int64]*activeRun
	wg     sync.WaitGroup

	watch *watchHub // one progress poller per watched run, shared by its watchers

	share *readShare // the read RPCs' statements at once (nil: no read pool)

	runsStarted  metric.Int64Counter
	runsFinished metric.Int64Counter
	runSeconds   metric.Float64Histogram
	attempts     metric.Int64Counter
	gauges       *runGauges // the runs driven here: active, pending chunks, past deadline
}

type activeRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
	// driving is set once the driver has its slot: from then on it does the
	// steps after the run's end itself, or returns and leaves them to the next
	// reconciler pass (finishEnded).
	driving atomic.Bool
}

// NewEngine builds an Engine over a PostgreSQL pool and a worker dispatcher. The
// runs it drives at once are bounded by the pool's size (MaxRunsForPool). Calls
// made with a context marked ForReading use reads (nil: pool).
func NewEngine(logger *slog.Logger, cfg Config, pool, reads *pgxpool.Pool, d *dispatch.Dispatcher, p progress.Store) (*Engine, error) {
	if pool == nil || d == nil || p == nil {
		return nil, errors.New("engine needs a database pool, a dispatcher and a progress store")
	}
	conns := pool.Config().MaxConns
	maxRuns := MaxRunsForPool(conns)
	if maxRuns < 1 {
		return nil, fmt.Errorf("a pool of %d connections is too small: the coordinator needs at least %d", conns, ReservedConns+1)
	}
	cfg.MaxRuns = cmp.Or(cfg.MaxRuns, maxRuns)
	if cfg.MaxRuns > maxRuns {
		return nil, fmt.Errorf("driving %d runs at once needs a pool of %d connections, not %d", cfg.MaxRuns, cfg.MaxRuns+ReservedConns, conns)
	}
	conflicts, err := newEstadoConflicts(logger)
	if err != nil {
		return nil, err
	}
	db := pgStore{pool: pool, reads: reads, conflicts: conflicts}
	if reads != nil {
		db.share = newReadShare(int(reads.Config().MaxConns), cmp.Or(cfg.ReadConnsWhileRunning, DefaultReadConnsWhileRunning),
			cmp.Or(cfg.ReadBusyPercentWhileRunning, DefaultReadBusyPercentWhileRunning))
	}
	e, err := newEngine(logger, cfg, db, db, dispatcherWorkers{d: d}, p)
	if err != nil {
		return nil, err
	}
	e.records = db
	e.share = db.share
	return e, nil
}

// newEngine builds an Engine over its seams: the ledger, the closings, the worker
// pool and the progress store.
func newEngine(logger *slog.Logger, cfg Config, l ledger, c closings, w workers, p progress.Store) (*Engine, error) {
	cfg.DefaultPolicy = cmp.Or(cfg.DefaultPolicy, domain.DefaultPolicy)
	cfg.ChunkHardTimeout = cmp.Or(cfg.ChunkHardTimeout, DefaultChunkHardTimeout)
	cfg.RunTimeout = cmp.Or(cfg.RunTimeout, DefaultRunTimeout)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)
	cfg.BusyBudget = cmp.Or(cfg.BusyBudget, DefaultBusyBudget)
	cfg.RetryBaseDelay = cmp.Or(cfg.RetryBaseDelay, DefaultRetryBaseDelay)
	cfg.RetryMaxDelay = cmp.Or(cfg.RetryMaxDelay, DefaultRetryMaxDelay)
	cfg.ReconcileEvery = cmp.Or(cfg.ReconcileEvery, DefaultReconcileEvery)
	cfg.WatchEvery = cmp.Or(cfg.WatchEvery, DefaultWatchEvery)
	cfg.KeyTTL = cmp.Or(cfg.KeyTTL, cfg.RunTimeout+KeyTTLMargin)
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, DefaultLeaseTTL)
	cfg.Replica = cmp.Or(cfg.Replica, defaultReplica())
	cfg.MaxRuns = cmp.Or(cfg.MaxRuns, MaxRunsForPool(DefaultPoolConns))
	if cfg.MaxRuns < 1 {
		return nil, fmt.Errorf("MaxRuns %d: want at least 1", cfg.MaxRuns)
	}
	if _, err := domain.ParsePolicy(string(cfg.DefaultPolicy)); err != nil {
		return nil, err
	}
	meter := otel.Meter("consolidation/coordinator")
	e := &Engine{logger: logger, cfg: cfg, ledger: l, closings: c, workers: w, progress: p,
		runs: newRunSlots(cfg.MaxRuns), ends: newRunSlots(1), starts: newRunSlots(MaxStarting),
		active: map[int64]*activeRun{}, gauges: newRunGauges()}
	e.watch = newWatchHub(e.report, cfg.WatchEvery)
	var err error
	if e.runsStarted, err = meter.Int64Counter("consolidation_runs_started", metric.WithDescription("Runs started")); err != nil {
		return nil, err
	}
	if e.runsFinished, err = meter.Int64Counter("consolidation_runs_finished", metric.WithDescription("Runs ended, by estado")); err != nil {
		return nil, err
	}
	if e.attempts, err = meter.Int64Counter("consolidation_chunk_attempts", metric.WithDescription("Chunk dispatches, by outcome")); err != nil {
		return nil, err
	}
	if e.runSeconds, err = meter.Float64Histogram("consolidation_run_seconds", metric.WithUnit("s"),
		metric.WithDescription("Time from a run's start to its end, by estado"),
		metric.WithExplicitBucketBoundaries(telemetry.RunSecondsBuckets...)); err != nil {
		return nil, err
	}
	if err := e.gauges.observe(meter); err != nil {
		return nil, err
	}
	return e, nil
}

// Run resumes the runs left unfinished and keeps reconciling until ctx is done:
// unfinished runs nobody drives are picked up, lost Redis progress is rebuilt
// from the ledger, and ended runs whose steps after the end nobody did get them
// (afterEnd). It returns after every run this engine drives has stopped.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	e.base = ctx
	e.mu.Unlock()
	attrs := []any{"max_runs", e.cfg.MaxRuns}
	if e.share != nil {
		attrs = append(attrs, "read_conns", e.share.full, "read_conns_while_running", e.share.running,
			"read_busy_percent_while_running", e.share.busyPercent)
	}
	e.logger.InfoContext(ctx, "engine running", attrs...)
	t := time.NewTicker(e.cfg.ReconcileEvery)
	defer t.Stop()
	for {
		e.reconcile(ctx)
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (e *Engine) reconcile(ctx context.Context) {
	e.finishEnded(ctx)
	runs, err := e.ledger.UnfinishedRuns(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.logger.WarnContext(ctx, "reconcile: listing unfinished runs", "error", err.Error())
		}
		return
	}
	if e.share != nil {
		e.share.sawLedger(len(runs) > 0)
	}
	for _, r := range runs {
		if !e.isActive(r.ID) {
			e.launch(r.ID, r.Employees)
			continue
		}
		if err := e.ensureProgress(ctx, r.ID); err != nil {
			e.logger.WarnContext(ctx, "reconcile: checking progress", "consolidation_id", r.ID, "error", err.Error())
		}
	}
}

// notify wakes the watchers of a run, if it has any.
func (e *Engine) notify(runID int64) { e.watch.notify(runID) }

func (e *Engine) isActive(runID int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.active[runID]
	return ok
}

// isDriving says whether a run is driven here past its wait for a slot.
func (e *Engine) isDriving(runID int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.active[runID]
	return ok && a.driving.Load()
}

// launch starts driving a run of size employees in the background unless it is
// driven here already, and returns its handle. The driver first waits for a slot
// (runSlots): at most MaxRuns runs are driven at once, however many are started or
// found unfinished, and the smallest waiting is driven first.
func (e *Engine) launch(runID int64, size int) *activeRun {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a, ok := e.active[runID]; ok {
		return a
	}
	ctx := e.base
	if ctx == nil {
		ctx = context.Background()
	}
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	a := &activeRun{cancel: cancel, done: make(chan struct{})}
	e.active[runID] = a
	if e.share != nil {
		e.share.driving(1)
	}
	e.wg.Add(1)
	// Stop driving when the engine stops (the run stays unfinished, to be resumed).
	stop := context.AfterFunc(ctx, func() { cancel(errEngineStopped) })
	go func() {
		defer e.wg.Done()
		defer stop()
		defer close(a.done)
		defer func() {
			e.mu.Lock()
			delete(e.active, runID)
			e.mu.Unlock()
			if e.share != nil {
				e.share.driving(-1)
			}
		}()
		slots, err := e.takeSlot(runCtx, ctx, runID, size)
		if err != nil {
			return // the engine stops: the run stays unfinished, to be resumed
		}
		defer slots.Release()
		a.driving.Store(true)
		e.drive(runCtx, runID)
	}()
	return a
}

// takeSlot waits for a slot to drive a run in and returns the slots it is from. A
// run cancelled while it waits takes the slot for ending cancelled runs instead.
// It fails only when the engine stops (engineCtx ends).
func (e *Engine) takeSlot(runCtx, engineCtx context.Context, runID int64, size int) (*runSlots, error) {
	if e.runs.TryAcquire() {
		return e.runs, nil
	}
	e.logger.InfoContext(runCtx, "run waiting for a slot", "consolidation_id", runID,
		"max_runs", e.cfg.MaxRuns, "runs_waiting", e.runs.Queued()+1)
	err := e.runs.Acquire(runCtx, runID, size)
	if err == nil {
		return e.runs, nil
	}
	if !errors.Is(err, errCancelled) {
		return nil, err
	}
	if err := e.ends.Acquire(engineCtx, runID, size); err != nil {
		return nil, err
	}
	return e.ends, nil
}

var (
	errEngineStopped = errors.New("coordinator stopping")
	errCancelled     = errors.New("consolidation cancelled")
)
