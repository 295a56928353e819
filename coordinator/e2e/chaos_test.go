package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/synth"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestChaosSoak is `make chaos` (docs/reliability.md): for CHAOS_DURATION, two
// coordinators and three workers consolidate closings of mixed sizes started
// continuously while faults drawn from CHAOS_SEED hit every process and hop, and
// each closing is checked, once it ends, against invariants computed by the
// test's own SQL and Go (chaos_oracle_test.go). It is skipped unless
// CHAOS_DURATION is set, so `make test` does not run it.
func TestChaosSoak(t *testing.T) {
	if os.Getenv("CHAOS_DURATION") == "" {
		t.Skip("CHAOS_DURATION not set: the soak runs with make chaos")
	}
	duration, err := time.ParseDuration(os.Getenv("CHAOS_DURATION"))
	require.NoError(t, err, "CHAOS_DURATION")
	seed := uint64(1)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
	}
	var s *soak
	// Registered first, so it runs last: the violations are printed again after
	// the processes' logs, where CI's tail of the output shows them.
	t.Cleanup(func() {
		if s != nil && len(s.violations) > 0 {
			t.Logf("invariant violations (repeated after the logs):\n%s", strings.Join(s.violations, "\n"))
		}
	})
	s = newSoak(t, seed)
	s.run(duration)
	s.report(duration)
	require.Zero(t, len(s.violations), "invariant violations:\n%s", strings.Join(s.violations, "\n"))
}

// closingBound is how long a closing may take, from its start to its end, with
// faults: a generous multiple of the lease TTL, the hard per-chunk limit and the
// longest fault.
const closingBound = 5 * time.Minute

const chaosPrefix = "chaos_"

type soak struct {
	t       *testing.T
	seed    uint64
	pool    *pgxpool.Pool // the test's own, straight to PostgreSQL
	pg      *localdb.PostgresServer
	rsrv    *localdb.RedisServer
	rdb     *redis.Client
	workers []*launch.Process
	coords  []*launch.Process
	clients []consolidationv1.ConsolidationServiceClient
	metrics []string // each coordinator's METRICS_ADDR
	// hops: coordinator → worker i (i < len(workers)), then PostgreSQL, then Redis.
	hops []*faultProxy

	estadoMu   sync.Mutex // held by an application write and its record
	mu         sync.Mutex
	closings   []*chaosClosing
	faults     []*faultSpan
	faultCount map[string]int
	violations []string
	// notGenerated counts closings the harness could not write between faults.
	notGenerated int
	baseline     []resourceSample
}

type faultSpan struct {
	kind       string
	start, end time.Time // end is zero while the fault lasts
}

// overlaps reports whether the fault was in force at some time in [from, to].
func (f *faultSpan) overlaps(from, to time.Time) bool {
	return f.start.Before(to) && (f.end.IsZero() || f.end.After(from))
}

type chaosClosing struct {
	id, runID     int64
	employees     int
	generations   int           // attempts at writing its sources (more than 1: a fault cut one short)
	start, end    time.Time     // the run's, from the ledger
	estadoWritten bool          // the application wrote estado mid-run (estado_write)
	done          chan struct{} // closed once the closing is checked
	// ended is closed once its run has ended (or never started): the closing's
	// place among those at once is free again while it is checked.
	ended     chan struct{}
	markEnded func()
}

func newSoak(t *testing.T, seed uint64) *soak {
	ctx := context.Background()
	s := &soak{t: t, seed: seed, faultCount: map[string]int{}}
	var dbURL string
	s.pg, dbURL = privatePostgres(t)
	s.pool = pgtest.OpenPool(t, dbURL)
	var err error
	s.rsrv, err = localdb.StartRedis(ctx)
	require.NoError(t, err)
	t.Cleanup(s.rsrv.Stop)
	ropt, err := redis.ParseURL(s.rsrv.URL())
	require.NoError(t, err)
	s.rdb = redis.NewClient(ropt)
	t.Cleanup(func() { _ = s.rdb.Close() })

	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	pgHop, err := newFaultProxy("postgres", u.Host)
	require.NoError(t, err)
	redisHop, err := newFaultProxy("redis", s.rsrv.Addr())
	require.NoError(t, err)
	u.Host = pgHop.Addr()
	serviceDB := u.String()
	logDir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			(&cluster{t: t, logDir: logDir}).dumpLogs()
		}
	})

	var targets []string
	for i := range 3 {
		name := fmt.Sprintf("worker-%d", i+1)
		w, err := launch.NewProcess(filepath.Join(binDir, "worker"), name, filepath.Join(logDir, name+".log"),
			"DATABASE_URL="+serviceDB, "WORKER_NAME="+name, "SHUTDOWN_DRAIN=5s", grpcx.EnvAllowPlaintext+"=true")
		require.NoError(t, err)
		w.DeathSignal = syscall.SIGKILL
		require.NoError(t, w.Start())
		t.Cleanup(w.Kill)
		hop, err := newFaultProxy(name, w.Addr)
		require.NoError(t, err)
		s.workers, s.hops = append(s.workers, w), append(s.hops, hop)
		targets = append(targets, hop.Addr())
	}
	s.hops = append(s.hops, pgHop, redisHop)
	for _, h := range s.hops {
		t.Cleanup(h.Close)
	}
	for i := range 2 {
		name := fmt.Sprintf("coordinator-%d", i+1)
		metricsAddr := freeAddr(t)
		c, err := launch.NewProcess(filepath.Join(binDir, "coordinator"), name, filepath.Join(logDir, name+".log"),
			"DATABASE_URL="+serviceDB, "REDIS_URL=redis://"+redisHop.Addr()+"/0", "WORKER_TARGET="+strings.Join(targets, ","),
			"REDIS_PREFIX="+chaosPrefix, "RECONCILE_EVERY=300ms", "RETRY_BASE_DELAY=50ms", "LEASE_TTL=3s",
			"SHUTDOWN_DRAIN=5s", "CHUNK_HARD_TIMEOUT=30s", "CHUNK_MAX_ATTEMPTS=8", "METRICS_ADDR="+metricsAddr,
			grpcx.EnvAllowPlaintext+"=true")
		require.NoError(t, err)
		c.DeathSignal = syscall.SIGKILL
		require.NoError(t, c.Start())
		t.Cleanup(c.Kill)
		s.coords, s.metrics = append(s.coords, c), append(s.metrics, metricsAddr)
	}
	for _, p := range append(slices.Clone(s.workers), s.coords...) {
		require.NoError(t, launch.WaitServing(ctx, p.Addr), "%s never served", p.Name)
	}
	for _, c := range s.coords {
		conn, err := grpcx.Dial(c.Addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		s.clients = append(s.clients, consolidationv1.NewConsolidationServiceClient(conn))
	}
	return s
}

func (s *soak) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// retryDB retries the test's own database work while PostgreSQL is restarted
// under it (the harness's reads, not the service's).
func retryDB(ctx context.Context, f func(ctx context.Context) error) error {
	var err error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = f(ctx); err == nil {
			return nil
		}
	}
	return err
}

// run starts closings and injects faults for d, then waits for every closing to
// end and be checked, and checks the processes for growth.
func (s *soak) run(d time.Duration) {
	ctx := context.Background()
	// A first closing with no fault warms the processes up; the baseline of
	// goroutines, connections and memory is taken after it.
	warm := s.startClosing(ctx, 0, 300)
	<-warm.done
	s.baseline = s.sample(ctx)

	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	wg.Go(func() { s.injectFaults(stop) })
	sizes := rand.New(rand.NewPCG(s.seed, 2))
	// Up to five closings at once, as at month end: enough that a fault usually
	// lands on several runs.
	inflight := make(chan struct{}, 5)
	// Each closing is generated, started and watched by a goroutine of its own,
	// so a 20,000-employee closing being written does not hold the next ones
	// back; its place is free again once its run has ended, while it is checked.
	var starters sync.WaitGroup
	for n := 1; time.Now().Before(stop); n++ {
		inflight <- struct{}{}
		if !time.Now().Before(stop) {
			break
		}
		employees := 20 + sizes.IntN(1500)
		if n%12 == 0 {
			employees = 20000
		}
		starters.Go(func() {
			c := s.startClosing(ctx, n, employees)
			<-c.ended
			<-inflight
		})
	}
	wg.Wait()
	starters.Wait()
	for _, c := range s.snapshotClosings() {
		<-c.done
	}
	s.checkGlobal(ctx)
}

func (s *soak) snapshotClosings() []*chaosClosing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.closings)
}

// chaosRUTBase gives closing n a RUT range of its own. A year of its own is not
// enough: an open-ended absence (no fecha_fin) covers every later month, so a
// closing written while another ran, for an earlier year and with RUTs in the
// other's range, added absences to that one's month after its run had read its
// sources; the oracle, reading later, counted them (docs/reliability.md). Each
// range holds a 20,000-employee closing and its unmatched novedades (bodies
// every 7); after 600 closings the ranges come round again, to closings long
// ended, so a body stays within eight digits.
func chaosRUTBase(n int) uint32 { return 2_000_000 + uint32(n%600)*150_000 }

// startClosing generates a closing, starts its run (retrying with one request
// id while coordinators are down) and checks it in the background once it ends.
func (s *soak) startClosing(ctx context.Context, n, employees int) *chaosClosing {
	c := &chaosClosing{employees: employees, done: make(chan struct{}), ended: make(chan struct{})}
	c.markEnded = sync.OnceFunc(func() { close(c.ended) })
	s.mu.Lock()
	s.closings = append(s.closings, c)
	s.mu.Unlock()
	err := retryDB(ctx, func(ctx context.Context) error {
		c.generations++
		// Movements are the payroll's, matched by RUT and month whatever the
		// closing (docs/rules.md), and two closings' random RUT ranges can
		// overlap: each closing gets a year of its own, so no closing generated
		// while another runs or is checked adds movements to its month.
		sum, err := synth.Generate(ctx, s.pool, synth.Config{Employees: employees, Seed: s.seed*1000 + uint64(n),
			Year: 2026 + n, Month: time.March, RUTBase: chaosRUTBase(n)})
		c.id = sum.ClosingID
		return err
	})
	if err != nil {
		// The harness could not write the closing between faults (a 20,000-employee
		// one, with PostgreSQL restarted again and again): nothing of the
		// service's to check; counted apart.
		s.t.Logf("closing #%d not generated: %v", n, err)
		s.mu.Lock()
		s.notGenerated++
		s.mu.Unlock()
		c.id = 0
		c.markEnded()
		close(c.done)
		return c
	}
	req := &consolidationv1.ConsolidateRequest{ClosingId: c.id, RequestId: fmt.Sprintf("chaos-%d", c.id)}
	for deadline, i := time.Now().Add(2*time.Minute), n; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := s.clients[i%len(s.clients)].Consolidate(cctx, req)
		cancel()
		if err == nil {
			c.runID = resp.GetConsolidationId()
			break
		}
		if time.Now().After(deadline) {
			s.violate("closing %d: not started within 2m: %v", c.id, err)
			c.markEnded()
			close(c.done)
			return c
		}
		time.Sleep(200 * time.Millisecond)
	}
	go func() {
		defer close(c.done)
		defer c.markEnded()
		s.checkClosing(ctx, c)
	}()
	return c
}

// checkClosing waits for a closing's run to end within closingBound and checks
// the invariants of docs/reliability.md against the database and Redis.
func (s *soak) checkClosing(ctx context.Context, c *chaosClosing) {
	var estado, found, closingEstado string
	deadline := time.Now().Add(closingBound)
	for {
		// The run's end is committed first and its after-end steps (the final
		// progress and the closing's hash in Redis among them) follow, done once by
		// whichever replica gets to them (docs/lifecycle.md): Redis is checked
		// only once the ledger records them done.
		var finished, afterEnd bool
		err := s.pool.QueryRow(ctx, `SELECT r.finished_at IS NOT NULL, r.after_end_done_at IS NOT NULL, r.estado,
				coalesce(r.closing_estado_found, ''), cl.estado, r.started_at, coalesce(r.finished_at, now())
			FROM consolidation_run r JOIN nomina_cierrenomina cl ON cl.id = r.cierre_id WHERE r.id = $1`, c.runID).
			Scan(&finished, &afterEnd, &estado, &found, &closingEstado, &c.start, &c.end)
		if err == nil && finished && afterEnd {
			c.markEnded()
			break
		}
		if time.Now().After(deadline) {
			if finished {
				s.violate("closing %d (run %d): ended %s but its after-end steps not done within %s", c.id, c.runID, estado, closingBound)
			} else {
				s.violate("closing %d (run %d): not ended within %s (estado %s)", c.id, c.runID, closingBound, estado)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.estadoMu.Lock()
	written := c.estadoWritten
	s.estadoMu.Unlock()
	var problems []string
	err := retryDB(ctx, func(ctx context.Context) error {
		var err error
		problems, err = s.invariants(ctx, c, estado, found, closingEstado, written)
		return err
	})
	if err != nil {
		problems = append(problems, "checking: "+err.Error())
	}
	for _, p := range problems {
		s.violate("closing %d (run %d, %d employees, sources written in %d attempts): %s", c.id, c.runID, c.employees, c.generations, p)
	}
}

func (s *soak) invariants(ctx context.Context, c *chaosClosing, estado, found, closingEstado string, written bool) ([]string, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if estado != string(domain.EstadoConsolidados) {
		bad("ended %s, not datos_consolidados", estado)
	}
	switch {
	case written && (found != string(domain.EstadoVerificado) || closingEstado != string(domain.EstadoVerificado)):
		// The application wrote before the end (we only write while it is
		// consolidando_datos, and the end reads under the row lock).
		bad("estado written mid-run: closing %s, found %q; want both %s", closingEstado, found, domain.EstadoVerificado)
	case !written && (found != "" || closingEstado != estado):
		bad("closing estado %s, found %q; want the run's %s", closingEstado, found, estado)
	}

	// Rows: one per libro employee, written by this run, equal to the oracle's.
	want, err := oracle(ctx, s.pool, c.id)
	if err != nil {
		return nil, err
	}
	got, runs, count, err := writtenRows(ctx, s.pool, c.id)
	if err != nil {
		return nil, err
	}
	mismatched, missing, dup, stale := 0, 0, 0, 0
	var diff rowDiff
	var differing []int64
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing++
		case count[id] > 1:
			dup++
		case runs[id] != c.runID:
			stale++
		case g.Row != w.Row || !slices.Equal(g.Concepts, w.Concepts):
			if mismatched == 0 {
				bad("libro row %d differs from the rules (first of the differing rows)", id)
			}
			mismatched++
			diff.add(g, w)
			differing = append(differing, id)
		}
	}
	orphans := 0
	for id := range got {
		if _, ok := want[id]; !ok {
			orphans++
		}
	}
	if mismatched > 0 {
		bad("what differs in the %d differing rows: %s", mismatched, diff)
		bad("where they are: %s", s.locate(ctx, c, differing, got, want))
	}
	if missing+dup+stale+mismatched+orphans > 0 {
		bad("rows: %d missing, %d duplicated, %d of another run, %d differing, %d orphan", missing, dup, stale, mismatched, orphans)
	}

	// Ledger: every chunk ended succeeded (or split into halves that did); a
	// succeeded chunk's employees have this run's rows; every attempt closed.
	var openChunks, failedChunks, shortChunks, openAttempts, totalChunks int
	err = s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE c.status IN ('pending', 'running')),
		       count(*) FILTER (WHERE c.status = 'failed'),
		       count(*) FILTER (WHERE c.status = 'succeeded' AND c.employees <> (
		           SELECT count(*) FROM nomina_empleado_consolidado e
		           WHERE e.cierre_id = $2 AND e.consolidation_run_id = c.run_id
		             AND e.empleado_origen_id BETWEEN c.first_employee_id AND c.last_employee_id)),
		       (SELECT count(*) FROM consolidation_chunk_attempt a WHERE a.run_id = $1 AND a.finished_at IS NULL),
		       (SELECT total_chunks FROM consolidation_run WHERE id = $1)
		FROM consolidation_chunk c WHERE c.run_id = $1`, c.runID, c.id).
		Scan(&openChunks, &failedChunks, &shortChunks, &openAttempts, &totalChunks)
	if err != nil {
		return nil, err
	}
	if openChunks+failedChunks+shortChunks+openAttempts > 0 {
		bad("ledger: %d chunks open, %d failed, %d succeeded without their rows, %d attempts never closed",
			openChunks, failedChunks, shortChunks, openAttempts)
	}

	// Redis, unless a fault removed the keys since the run started (nothing
	// rebuilds an ended run's keys): the run's progress hash and the closing's
	// agree with the ledger.
	s.mu.Lock()
	lost := false
	for _, f := range s.faults {
		if (f.kind == "redis_flushall" || f.kind == "redis_restart") && f.overlaps(c.start, time.Now()) {
			lost = true
		}
	}
	s.mu.Unlock()
	if !lost {
		p, err := s.rdb.HGetAll(ctx, fmt.Sprintf("%srun:%d:progress", chaosPrefix, c.runID)).Result()
		if err != nil {
			return nil, err
		}
		cp, err := s.rdb.HGetAll(ctx, fmt.Sprintf("%sprogress_cierre_%d", chaosPrefix, c.id)).Result()
		if err != nil {
			return nil, err
		}
		tc, done, emp := strconv.Itoa(totalChunks), p["chunks_completados"], strconv.Itoa(len(want))
		if p["total_chunks"] != tc || done != tc || p["empleados_procesados"] != emp ||
			cp["consolidation_id"] != strconv.FormatInt(c.runID, 10) || cp["chunks_completados"] != tc {
			bad("redis: run progress total %s done %s employees %s, closing's hash run %s done %s; ledger %s chunks, %s employees",
				p["total_chunks"], done, p["empleados_procesados"], cp["consolidation_id"], cp["chunks_completados"], tc, emp)
		}
	}
	return problems, nil
}

// resourceSample is one coordinator's goroutines, open files and resident
// memory, and the services' PostgreSQL sessions.
type resourceSample struct {
	goroutines, fds, rss float64
	sessions             int
}

func (s *soak) sample(ctx context.Context) []resourceSample {
	var sessions int
	_ = retryDB(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'consolidation-%'`).Scan(&sessions)
	})
	var out []resourceSample
	for _, addr := range s.metrics {
		e := scrape(s.t, addr)
		f := func(name string) float64 {
			v, _ := strconv.ParseFloat(e.sample(name+" "), 64)
			return v
		}
		out = append(out, resourceSample{goroutines: f("go_goroutines"), fds: f("process_open_fds"),
			rss: f("process_resident_memory_bytes"), sessions: sessions})
	}
	return out
}

// checkGlobal runs after the last closing: no run left unfinished, and no
// growth of goroutines, open files, memory or sessions past the baseline's.
func (s *soak) checkGlobal(ctx context.Context) {
	var unfinished int
	if err := retryDB(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT count(*) FROM consolidation_run WHERE finished_at IS NULL").Scan(&unfinished)
	}); err != nil || unfinished > 0 {
		s.violate("runs left unfinished: %d (%v)", unfinished, err)
	}
	// Let idle work settle (watch feeds, keepalives), then compare.
	time.Sleep(5 * time.Second)
	end := s.sample(ctx)
	for i, b := range s.baseline {
		e := end[i]
		s.t.Logf("%s: goroutines %.0f → %.0f, open files %.0f → %.0f, resident MB %.0f → %.0f, service sessions %d → %d",
			s.coords[i].Name, b.goroutines, e.goroutines, b.fds, e.fds, b.rss/1e6, e.rss/1e6, b.sessions, e.sessions)
		if e.goroutines > 2*b.goroutines+50 || e.fds > 2*b.fds+50 || e.rss > 2*b.rss+200e6 {
			s.violate("%s grew: goroutines %.0f → %.0f, open files %.0f → %.0f, resident MB %.0f → %.0f",
				s.coords[i].Name, b.goroutines, e.goroutines, b.fds, e.fds, b.rss/1e6, e.rss/1e6)
		}
	}
	// Every pool at its maximum: each coordinator's run pool and read pool, each
	// worker's (its in-flight chunks + 2), all at their defaults.
	maxSessions := len(s.coords)*(engine.DefaultPoolConns+engine.DefaultReadPoolConns) +
		len(s.workers)*(config.DefaultWorkerMaxInFlight+2)
	if end[0].sessions > maxSessions {
		s.violate("service sessions %d over the pools' maxima (%d)", end[0].sessions, maxSessions)
	}
}

// report prints the soak's table.
func (s *soak) report(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var with, without []time.Duration
	employees := 0
	generated := 0
	for _, c := range s.closings[1:] { // the warm-up closing is not counted
		if c.id == 0 {
			continue
		}
		generated++
		employees += c.employees
		if c.end.IsZero() {
			continue
		}
		if slices.ContainsFunc(s.faults, func(f *faultSpan) bool { return f.overlaps(c.start, c.end) }) {
			with = append(with, c.end.Sub(c.start))
		} else {
			without = append(without, c.end.Sub(c.start))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos soak: CHAOS_DURATION=%s CHAOS_SEED=%d\n", d, s.seed)
	fmt.Fprintf(&b, "| closings | employees | faults | invariant violations |\n|---|---|---|---|\n")
	total := 0
	for _, n := range s.faultCount {
		total += n
	}
	fmt.Fprintf(&b, "| %d | %d | %d | %d |\n\n", generated, employees, total, len(s.violations))
	if s.notGenerated > 0 {
		fmt.Fprintf(&b, "(%d closings could not be generated between faults and were not started)\n\n", s.notGenerated)
	}
	fmt.Fprintf(&b, "| fault | injected |\n|---|---|\n")
	for _, k := range slices.Sorted(mapKeys(s.faultCount)) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, s.faultCount[k])
	}
	fmt.Fprintf(&b, "\n| closing time | closings | p50 | p99 |\n|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{{"with faults", with}, {"without faults", without}} {
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", row.name, len(row.d), percentile(row.d, 50), percentile(row.d, 99))
	}
	s.t.Log("\n" + b.String())
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func percentile(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "–"
	}
	slices.Sort(d)
	i := (len(d)*p+99)/100 - 1
	return d[max(i, 0)].Round(100 * time.Millisecond).String()
}

// rowDiff counts, over the rows that differ from the oracle's, which of the
// employee row's columns differ and how many concept lines only one side has:
// names and counts only, never values (docs/architecture.md, "Telemetry": no RUTs,
// names or amounts in what a failure prints).
type rowDiff struct {
	columns                   map[string]int
	onlyWritten, onlyExpected int
}

var oracleColumns = []string{"rut", "nombre_completo", "cargo", "centro_costo", "es_ingreso", "es_finiquito",
	"tiene_ausentismo", "total_haberes", "total_descuentos", "liquido_pagar", "fuentes_utilizadas", "discrepancias_resueltas"}

func (d *rowDiff) add(got, want oracleEmployee) {
	if d.columns == nil {
		d.columns = map[string]int{}
	}
	g, w := strings.Split(got.Row, "|"), strings.Split(want.Row, "|")
	if len(g) != len(oracleColumns) || len(w) != len(oracleColumns) {
		d.columns["(a column holds the separator)"]++
	} else {
		for i, name := range oracleColumns {
			if g[i] != w[i] {
				d.columns[name]++
			}
		}
	}
	for _, c := range got.Concepts {
		if !slices.Contains(want.Concepts, c) {
			d.onlyWritten++
		}
	}
	for _, c := range want.Concepts {
		if !slices.Contains(got.Concepts, c) {
			d.onlyExpected++
		}
	}
}

func (d rowDiff) String() string {
	names := make([]string, 0, len(d.columns))
	for name, n := range d.columns {
		names = append(names, fmt.Sprintf("%s %d", name, n))
	}
	slices.Sort(names)
	return fmt.Sprintf("columns [%s]; concept lines only in the written rows %d, only in the rules' %d",
		strings.Join(names, ", "), d.onlyWritten, d.onlyExpected)
}
