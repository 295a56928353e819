// Package dispatch sends ProcessChunk calls to the worker pool: client-side
// round-robin over the workers named by WORKER_TARGET (a comma list of host:port,
// or dns:///name:port for a Kubernetes headless Service, re-resolved as pods come
// and go), with a bounded number of calls in flight per worker and a short
// cool-down for a worker whose call just failed.
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// Defaults of Config, the one place each is written.
const (
	DefaultMaxInFlightPerWorker = 2
	DefaultResolveEvery         = 5 * time.Second
	DefaultCoolDown             = 500 * time.Millisecond
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
}

// ErrNoWorkers means no worker answered a health check.
var ErrNoWorkers = errors.New("no worker is reachable")

// Dispatcher holds a connection per worker and hands out call slots.
type Dispatcher struct {
	logger           *slog.Logger
	cfg              Config
	dnsHost, dnsPort string

	mu        sync.Mutex
	endpoints map[string]*endpoint
	order     []string
	next      int
	changed   chan struct{} // closed (and replaced) when a slot frees or the worker set changes
	stop      chan struct{}
	stopOnce  sync.Once
}

type endpoint struct {
	addr      string
	conn      *grpc.ClientConn
	client    consolidationv1.WorkerServiceClient
	health    healthpb.HealthClient
	inFlight  int
	failures  int // calls failed in a row
	coolUntil time.Time
	removed   bool
}

// NewDispatcher builds a Dispatcher and connects to the workers (connections are
// lazy: nothing is dialled until the first call).
func NewDispatcher(logger *slog.Logger, cfg Config) (*Dispatcher, error) {
	cfg.MaxInFlightPerWorker = cmp.Or(cfg.MaxInFlightPerWorker, DefaultMaxInFlightPerWorker)
	cfg.ResolveEvery = cmp.Or(cfg.ResolveEvery, DefaultResolveEvery)
	cfg.CoolDown = cmp.Or(cfg.CoolDown, DefaultCoolDown)
	if strings.TrimSpace(cfg.Target) == "" {
		return nil, errors.New("WORKER_TARGET is empty")
	}
	d := &Dispatcher{logger: logger, cfg: cfg, endpoints: map[string]*endpoint{},
		changed: make(chan struct{}), stop: make(chan struct{})}
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
		case <-d.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ResolveEvery)
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
		conn, err := grpcx.Dial(a, grpcx.WithGRPCDialOptions(
			// Workers come and go (pods, restarts): reconnect quickly.
			grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 2 * time.Second,
				Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}}),
		))
		if err != nil {
			return fmt.Errorf("worker %s: %w", a, err)
		}
		conn.Connect() // dial now rather than on the first chunk
		d.endpoints[a] = &endpoint{addr: a, conn: conn, client: consolidationv1.NewWorkerServiceClient(conn),
			health: healthpb.NewHealthClient(conn)}
		d.logger.Info("worker added", "worker", a)
	}
	for a, ep := range d.endpoints {
		if !slices.Contains(addrs, a) {
			ep.removed = true
			delete(d.endpoints, a)
			if ep.inFlight == 0 {
				_ = ep.conn.Close()
			}
			d.logger.Info("worker removed", "worker", a)
		}
	}
	d.order = addrs
	d.notifyLocked()
	return nil
}

// Lease is a call slot on one worker.
type Lease struct {
	d  *Dispatcher
	ep *endpoint
}

// Worker is the address of the leased worker.
func (l *Lease) Worker() string { return l.ep.addr }

// ProcessChunk calls the leased worker. A failed call returns a *CallError, whose
// kind says what failed.
func (l *Lease) ProcessChunk(ctx context.Context, req ChunkRequest) (ChunkResult, error) {
	var reached peer.Peer // set once the call has a connection to the worker
	resp, err := l.ep.client.ProcessChunk(ctx, &consolidationv1.ProcessChunkRequest{
		ConsolidationId: req.RunID, ClosingId: req.ClosingID, ChunkIndex: int32(req.Index), AttemptToken: req.Token,
	}, grpc.Peer(&reached))
	if err != nil {
		return ChunkResult{}, callError(err, reached.Addr != nil)
	}
	return ChunkResult{FromLedger: resp.GetSummary().GetFromLedger()}, nil
}

// Release gives the slot back; failed puts the worker in a cool-down (growing while
// it keeps failing) so retries go elsewhere.
func (l *Lease) Release(failed bool) {
	d := l.d
	d.mu.Lock()
	l.ep.inFlight--
	if failed {
		l.ep.failures++
		l.ep.coolUntil = time.Now().Add(d.cfg.CoolDown << min(l.ep.failures-1, 5))
	} else {
		l.ep.failures = 0
	}
	if l.ep.removed && l.ep.inFlight == 0 {
		_ = l.ep.conn.Close()
	}
	d.notifyLocked()
	d.mu.Unlock()
}

// notifyLocked wakes every waiter in Acquire; d.mu must be held.
func (d *Dispatcher) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// Acquire waits for a free slot, taking workers in round-robin order and passing
// over those cooling down (unless every worker is).
func (d *Dispatcher) Acquire(ctx context.Context) (*Lease, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		l, changed := d.tryAcquire()
		if l != nil {
			return l, nil
		}
		// Wait for a slot to free, or for a cool-down to end.
		t.Reset(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-changed:
		case <-t.C:
		}
	}
}

// tryAcquire takes a slot if one is free; otherwise it returns the channel that is
// closed at the next change.
func (d *Dispatcher) tryAcquire() (*Lease, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.pick()
	return l, d.changed
}

func (d *Dispatcher) pick() *Lease {
	n := len(d.order)
	now := time.Now()
	fallback, fallbackAt, anyHealthy := (*endpoint)(nil), 0, false
	for i := range n {
		ep := d.endpoints[d.order[(d.next+i)%n]]
		if ep == nil {
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
	// Every worker is cooling down: better to try one than to wait forever.
	if fallback != nil && !anyHealthy {
		return d.take(fallback, fallbackAt)
	}
	return nil
}

func (d *Dispatcher) take(ep *endpoint, i int) *Lease {
	ep.inFlight++
	d.next = (d.next + i + 1) % len(d.order)
	return &Lease{d: d, ep: ep}
}

// Capacity is the number of calls that can be in flight at once.
func (d *Dispatcher) Capacity() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.endpoints) * d.cfg.MaxInFlightPerWorker
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
	d.stopOnce.Do(func() { close(d.stop) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ep := range d.endpoints {
		_ = ep.conn.Close()
	}
}
