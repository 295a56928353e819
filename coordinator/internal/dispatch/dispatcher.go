// Package dispatch sends ProcessChunk calls to the worker pool: client-side
// round-robin over the workers named by WORKER_TARGET (a comma list of host:port,
// or dns:///name:port for a Kubernetes headless Service, re-resolved as pods come
// and go), with a bounded number of calls in flight per worker, a short cool-down
// for a worker whose call just failed, and workers whose health says NOT_SERVING
// (draining) passed over. Slots go to the smallest run waiting for one first, so a
// small run is not stuck behind a large one.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// Defaults of Config, the one place each is written.
const (
	DefaultMaxInFlightPerWorker = config.DefaultWorkerMaxInFlight // WORKER_MAX_IN_FLIGHT's, shared with the worker
	DefaultResolveEvery         = 5 * time.Second
	DefaultCoolDown             = 500 * time.Millisecond
	DefaultHealthEvery          = time.Second
)

// Config configures a Dispatcher.
type Config struct {
	// Target names the workers: "host:port,host:port" or "dns:///name:port".
	Target string
	// MaxInFlightPerWorker bounds the calls in flight on one worker (default:
	// DefaultMaxInFlightPerWorker, 2).
	MaxInFlightPerWorker int
	// ResolveEvery is how often a dns:/// target is resolved again (default:
	// DefaultResolveEvery, 5s).
	ResolveEvery time.Duration
	// CoolDown is how long a worker whose call failed is passed over, doubled for
	// each further failure in a row up to 32 times (default: DefaultCoolDown, 500ms).
	CoolDown time.Duration
	// HealthEvery is how often a worker whose health said NOT_SERVING is asked
	// again, and how long a broken health watch waits before it is opened again
	// (default: DefaultHealthEvery, 1s).
	HealthEvery time.Duration
	// DialOptions are added to every worker connection: the coordinator's mTLS
	// (grpcx.Security.DialOptions). With a dns:/// target the workers' certificates
	// are checked for the target's name (the headless Service), since they are
	// dialled by pod IP; with host:port, for the host.
	DialOptions []grpcx.DialOption
}

// ErrNoWorkers means no worker answered a health check.
var ErrNoWorkers = errors.New("no worker is reachable")

// Dispatcher holds a connection per worker and hands out call slots.
type Dispatcher struct {
	logger           *slog.Logger
	cfg              Config
	dnsHost, dnsPort string

	ctx     context.Context // ends on Close: stops resolving and the health watches
	cancel  context.CancelFunc
	metrics metric.Registration // the gauges' callback (observeSlots), until Close

	mu        sync.Mutex
	endpoints map[string]*endpoint
	order     []string
	next      int
	queues    map[int64]*runQueue // per run that waits or expects to ask
	turns     []int64             // the runs in queues, in the order runs of one size are served
	turn      int                 // index in turns where the search for the next run starts
}

type endpoint struct {
	addr       string
	conn       *grpc.ClientConn
	client     consolidationv1.WorkerServiceClient
	health     healthpb.HealthClient
	stopWatch  context.CancelFunc
	inFlight   int
	failures   int // calls failed in a row
	coolUntil  time.Time
	notServing bool // its health said NOT_SERVING and has not said SERVING since
	// heard: its health has answered at least once (or it has no health service).
	// Until then it takes chunks, as a worker serving would, but is not counted
	// healthy: a draining worker is connected a moment before it says so.
	heard   bool
	removed bool
}

// waiter is an Acquire call waiting for a slot.
type waiter struct {
	slot  *Slot         // set, under Dispatcher.mu, when a slot is given
	ready chan struct{} // closed when slot is set
}

// runQueue is what a run wants of the slots.
type runQueue struct {
	size      int       // the run's employees: the smaller is served first
	waiters   []*waiter // its Acquire calls waiting, oldest first
	expected  int       // asks its driver said are to come (Expect), not yet made
	expecting int       // Expect calls not done
	parked    []*Slot   // slots set aside for its asks to come
}

// wants says whether the run wants a slot now or in an instant.
func (q *runQueue) wants() bool { return len(q.waiters) > 0 || q.expected > 0 }

// NewDispatcher builds a Dispatcher and connects to the workers (connections are
// lazy: nothing is dialled until the first call).
func NewDispatcher(logger *slog.Logger, cfg Config) (*Dispatcher, error) {
	cfg.MaxInFlightPerWorker = cmp.Or(cfg.MaxInFlightPerWorker, DefaultMaxInFlightPerWorker)
	cfg.ResolveEvery = cmp.Or(cfg.ResolveEvery, DefaultResolveEvery)
	cfg.CoolDown = cmp.Or(cfg.CoolDown, DefaultCoolDown)
	cfg.HealthEvery = cmp.Or(cfg.HealthEvery, DefaultHealthEvery)
	if strings.TrimSpace(cfg.Target) == "" {
		return nil, errors.New("WORKER_TARGET is empty")
	}
	d := &Dispatcher{logger: logger, cfg: cfg, endpoints: map[string]*endpoint{}, queues: map[int64]*runQueue{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.observeSlots(); err != nil {
		return nil, err
	}
	if rest, ok := strings.CutPrefix(cfg.Target, "dns:///"); ok {
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return nil, fmt.Errorf("WORKER_TARGET %q: want dns:///name:port: %w", cfg.Target, err)
		}
		d.dnsHost, d.dnsPort = host, port
		if err := d.resolve(context.Background()); err != nil {
			logger.Warn("resolving workers", "target", cfg.Target, "error", err.Error())
		}
		go d.resolveLoop()
		return d, nil
	}
	var addrs []string
	for _, a := range strings.Split(cfg.Target, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("WORKER_TARGET %q: %q is not host:port", cfg.Target, a)
		}
		addrs = append(addrs, a)
	}
	if err := d.setAddrs(addrs); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dispatcher) resolveLoop() {
	t := time.NewTicker(d.cfg.ResolveEvery)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(d.ctx, d.cfg.ResolveEvery)
			if err := d.resolve(ctx); err != nil {
				d.logger.Warn("resolving workers", "target", d.cfg.Target, "error", err.Error())
			}
			cancel()
		}
	}
}

func (d *Dispatcher) resolve(ctx context.Context) error {
	ips, err := net.DefaultResolver.LookupHost(ctx, d.dnsHost)
	if err != nil {
		return err
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, d.dnsPort))
	}
	return d.setAddrs(addrs)
}

// setAddrs makes the worker set exactly addrs, keeping existing connections.
func (d *Dispatcher) setAddrs(addrs []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	for _, a := range addrs {
		if _, ok := d.endpoints[a]; ok {
			continue
		}
		opts := append(slices.Clone(d.cfg.DialOptions), grpcx.WithGRPCDialOptions(
			// Workers come and go (pods, restarts): reconnect quickly.
			grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 2 * time.Second,
				Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}}),
		))
		if d.dnsHost != "" {
			opts = append(opts, grpcx.WithTLSServerName(d.dnsHost))
		}
		conn, err := grpcx.Dial(a, opts...)
		if err != nil {
			return fmt.Errorf("worker %s: %w", a, err)
		}
		conn.Connect() // dial now rather than on the first chunk
		ep := &endpoint{addr: a, conn: conn, client: consolidationv1.NewWorkerServiceClient(conn),
			health: healthpb.NewHealthClient(conn)}
		var watchCtx context.Context
		watchCtx, ep.stopWatch = context.WithCancel(d.ctx)
		go d.watchHealth(watchCtx, ep)
		d.endpoints[a] = ep
		d.logger.Info("worker added", "worker", a)
	}
	for a, ep := range d.endpoints {
		if !slices.Contains(addrs, a) {
			ep.removed = true
			ep.stopWatch()
			delete(d.endpoints, a)
			if ep.inFlight == 0 {
				_ = ep.conn.Close()
			}
			d.logger.Info("worker removed", "worker", a)
		}
	}
	d.order = addrs
	d.serveLocked()
	return nil
}

// Slot is a call slot on one worker.
type Slot struct {
	d  *Dispatcher
	ep *endpoint
}

// Worker is the address of the slot's worker.
func (l *Slot) Worker() string { return l.ep.addr }

// ProcessChunk calls the slot's worker. A failed call returns a *CallError, whose
// kind says what failed.
func (l *Slot) ProcessChunk(ctx context.Context, req ChunkRequest) (ChunkResult, error) {
	var reached peer.Peer // set once the call has a connection to the worker
	var header, trailer metadata.MD
	resp, err := l.ep.client.ProcessChunk(ctx, &consolidationv1.ProcessChunkRequest{
		ConsolidationId: req.RunID, ClosingId: req.ClosingID, ChunkIndex: int32(req.Index), AttemptToken: req.Token,
	}, grpc.Peer(&reached), grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		return ChunkResult{}, callError(err, callReach{
			Reached: reached.Addr != nil, Held: grpcx.Held(header), Answered: grpcx.Answered(trailer),
		})
	}
	return ChunkResult{FromLedger: resp.GetSummary().GetFromLedger()}, nil
}

// Release gives the slot back; coolDown (its call failed) puts the worker in a
// cool-down (growing while it keeps failing) so retries go elsewhere.
func (l *Slot) Release(coolDown bool) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if coolDown {
		l.ep.failures++
		cool := d.cfg.CoolDown << min(l.ep.failures-1, 5)
		l.ep.coolUntil = time.Now().Add(cool)
		// Nobody else says when a cool-down ends: serve the waiters then.
		time.AfterFunc(cool, d.serve)
	} else {
		l.ep.failures = 0
	}
	d.freeLocked(l.ep)
}

// freeLocked frees a slot of ep and hands it on; d.mu must be held.
func (d *Dispatcher) freeLocked(ep *endpoint) {
	ep.inFlight--
	if ep.removed && ep.inFlight == 0 {
		_ = ep.conn.Close()
	}
	d.serveLocked()
}

// Acquire waits for a free slot on a worker for a run of size employees. A free
// slot goes to the smallest run that wants one (docs/architecture.md, "Many runs
// at once"): a run waiting in Acquire, or one whose driver said, with Expect, that
// it will ask again; runs of the same size are served in turn, one slot each. A
// run's own calls are served in the order they asked. Workers are taken in
// round-robin order, passing over those whose health says NOT_SERVING and those
// cooling down (unless every worker serving is).
func (d *Dispatcher) Acquire(ctx context.Context, runID int64, size int) (*Slot, error) {
	d.mu.Lock()
	q := d.queueLocked(runID, size)
	if n := len(q.parked); n > 0 { // set aside for this ask (Expect)
		l := q.parked[0]
		q.parked = slices.Delete(q.parked, 0, 1)
		d.dropIdleLocked(runID)
		d.mu.Unlock()
		return l, nil
	}
	if q.expected > 0 {
		q.expected-- // the ask said it would come: it is here
	}
	w := &waiter{ready: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	d.serveLocked()
	d.mu.Unlock()
	select {
	case <-w.ready:
		return w.slot, nil
	case <-ctx.Done():
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if w.slot != nil { // given a slot just now: hand it on
		d.freeLocked(w.slot.ep)
	} else {
		q.waiters = slices.DeleteFunc(q.waiters, func(o *waiter) bool { return o == w })
		d.dropIdleLocked(runID)
	}
	return nil, context.Cause(ctx)
}

// Expect says that a run of size employees will ask for n more slots, one after
// another (a driver handing out its planned chunks), until done is called. While
// it has asks to come, the run counts as waiting for a slot even in the instant
// between one ask's slot and its next ask: a slot freed then is set aside for its
// next ask, never given to a larger run. done gives back the slots set aside and
// not taken; call it when the driver stops asking (it may be called more than once).
func (d *Dispatcher) Expect(runID int64, size, n int) (done func()) {
	d.mu.Lock()
	q := d.queueLocked(runID, size)
	q.expected += n
	q.expecting++
	d.serveLocked()
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			q.expecting--
			if q.expecting == 0 {
				q.expected = 0
				parked := q.parked
				q.parked = nil
				for _, l := range parked {
					d.freeLocked(l.ep)
				}
			}
			d.dropIdleLocked(runID)
			d.serveLocked()
		})
	}
}

// serve hands free slots to the waiting runs.
func (d *Dispatcher) serve() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.serveLocked()
}

// serveLocked hands free slots to the runs that want one, smallest first; d.mu
// must be held.
func (d *Dispatcher) serveLocked() {
	for {
		i := d.nextRunLocked()
		if i < 0 {
			return
		}
		l := d.pick()
		if l == nil {
			return
		}
		run := d.turns[i]
		q := d.queues[run]
		if len(q.waiters) > 0 {
			w := q.waiters[0]
			q.waiters = slices.Delete(q.waiters, 0, 1)
			w.slot = l
			close(w.ready)
		} else { // an ask to come (Expect): its slot waits for it
			q.parked = append(q.parked, l)
			q.expected--
		}
		d.turn = i + 1
		d.dropIdleLocked(run)
		if d.turn >= len(d.turns) {
			d.turn = 0
		}
	}
}

// nextRunLocked is the index in d.turns of the run served next: of the runs that
// want a slot, the smallest; of those, the first from d.turn on. -1 if none
// wants one. d.mu must be held.
func (d *Dispatcher) nextRunLocked() int {
	best := -1
	for k := range len(d.turns) {
		i := (d.turn + k) % len(d.turns)
		q := d.queues[d.turns[i]]
		if !q.wants() {
			continue
		}
		if best < 0 || q.size < d.queues[d.turns[best]].size {
			best = i
		}
	}
	return best
}

// queueLocked returns a run's queue, made if new: a new run joins the turns last,
// after every run there now has had its turn. d.mu must be held.
func (d *Dispatcher) queueLocked(run int64, size int) *runQueue {
	if q, ok := d.queues[run]; ok {
		q.size = size
		return q
	}
	q := &runQueue{size: size}
	d.queues[run] = q
	d.turns = slices.Insert(d.turns, d.turn, run)
	d.turn = (d.turn + 1) % len(d.turns)
	return q
}

// dropIdleLocked forgets a run's queue once nothing waits in it, nothing is set
// aside for it and no Expect of it is open. d.mu must be held.
func (d *Dispatcher) dropIdleLocked(run int64) {
	q, ok := d.queues[run]
	if !ok || q.wants() || len(q.parked) > 0 || q.expecting > 0 {
		return
	}
	delete(d.queues, run)
	i := slices.Index(d.turns, run)
	d.turns = slices.Delete(d.turns, i, i+1)
	if i < d.turn {
		d.turn--
	}
	if d.turn >= len(d.turns) {
		d.turn = 0
	}
}

func (d *Dispatcher) pick() *Slot {
	n := len(d.order)
	now := time.Now()
	fallback, fallbackAt, anyHealthy := (*endpoint)(nil), 0, false
	for i := range n {
		ep := d.endpoints[d.order[(d.next+i)%n]]
		if ep == nil || ep.notServing {
			continue
		}
		cooling := now.Before(ep.coolUntil)
		anyHealthy = anyHealthy || !cooling
		if ep.inFlight >= d.cfg.MaxInFlightPerWorker {
			continue
		}
		if !cooling {
			return d.take(ep, i)
		}
		if fallback == nil {
			fallback, fallbackAt = ep, i
		}
	}
	// Every worker serving is cooling down: better to try one than to wait forever.
	if fallback != nil && !anyHealthy {
		return d.take(fallback, fallbackAt)
	}
	return nil
}

func (d *Dispatcher) take(ep *endpoint, i int) *Slot {
	ep.inFlight++
	d.next = (d.next + i + 1) % len(d.order)
	return &Slot{d: d, ep: ep}
}

// Healthy checks the workers' gRPC health and returns how many are serving, or
// ErrNoWorkers when none is.
func (d *Dispatcher) Healthy(ctx context.Context) (int, error) {
	d.mu.Lock()
	eps := make([]*endpoint, 0, len(d.endpoints))
	for _, ep := range d.endpoints {
		eps = append(eps, ep)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	serving := 0
	for _, ep := range eps {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			// Wait for a connection that is still (re)connecting, within the timeout.
			resp, err := ep.health.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				mu.Lock()
				serving++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if serving == 0 {
		return 0, ErrNoWorkers
	}
	return serving, nil
}

// Close closes every connection.
func (d *Dispatcher) Close() {
	d.cancel()
	if d.metrics != nil {
		_ = d.metrics.Unregister()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ep := range d.endpoints {
		_ = ep.conn.Close()
	}
}
