package e2e_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/synth"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir,
		"github.com/nominacl/consolidation/coordinator/cmd/coordinator",
		"github.com/nominacl/consolidation/worker/cmd/worker")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	code := pgtest.Main(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a coordinator or worker process of a test.
type proc struct {
	name string
	addr string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
}

type clusterOptions struct {
	workers   int
	coordEnv  []string // extra coordinator environment
	workerEnv []string // extra worker environment
	redisURL  string   // default: the shared test Redis
	// privateRedis starts a redis-server of the test's own, which the test may
	// flush, kill and restart (cluster.redisServer).
	privateRedis bool
}

// cluster is a database, a Redis key space, workers and a coordinator of one test.
type cluster struct {
	t       *testing.T
	dbURL   string
	pool    *pgxpool.Pool
	redis   pgtest.Redis
	workers []*proc
	coord   *proc
	client  consolidationv1.ConsolidationServiceClient
	logDir  string
	mu      sync.Mutex

	redisServer *localdb.RedisServer // with privateRedis
}

func newCluster(t *testing.T, opts clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, dbURL: pgtest.NewDatabase(t), redis: pgtest.NewRedis(t), logDir: t.TempDir()}
	if opts.redisURL != "" {
		c.redis.URL = opts.redisURL
	}
	if opts.privateRedis {
		srv, err := localdb.StartRedis(context.Background())
		require.NoError(t, err)
		t.Cleanup(srv.Stop)
		c.redisServer = srv
		c.redis.URL = srv.URL()
	}
	c.pool = pgtest.OpenPool(t, c.dbURL)
	var targets []string
	for i := range opts.workers {
		w := &proc{name: fmt.Sprintf("worker-%d", i+1), addr: freeAddr(t)}
		w.env = append([]string{"DATABASE_URL=" + c.dbURL, "GRPC_ADDR=" + w.addr, "WORKER_NAME=" + w.name,
			"SHUTDOWN_DRAIN=5s"}, opts.workerEnv...)
		c.workers = append(c.workers, w)
		targets = append(targets, w.addr)
		c.start(w)
	}
	if len(targets) == 0 {
		targets = []string{freeAddr(t)} // nobody listens there
	}
	c.coord = &proc{name: "coordinator", addr: freeAddr(t)}
	c.coord.env = append([]string{"DATABASE_URL=" + c.dbURL, "REDIS_URL=" + c.redis.URL, "REDIS_PREFIX=" + c.redis.Prefix,
		"GRPC_ADDR=" + c.coord.addr, "WORKER_TARGET=" + strings.Join(targets, ","), "RECONCILE_EVERY=300ms",
		"RETRY_BASE_DELAY=50ms", "SHUTDOWN_DRAIN=5s"}, opts.coordEnv...)
	c.start(c.coord)
	conn, err := grpcx.Dial(c.coord.addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c.client = consolidationv1.NewConsolidationServiceClient(conn)
	for _, p := range append([]*proc{c.coord}, c.workers...) {
		c.waitServing(p)
	}
	t.Cleanup(func() {
		for _, p := range append([]*proc{c.coord}, c.workers...) {
			c.kill(p)
		}
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// start launches a process (again, after a kill), logging to the test's log dir.
func (c *cluster) start(p *proc) {
	c.t.Helper()
	bin := "worker"
	if p == c.coord {
		bin = "coordinator"
	}
	logFile, err := os.OpenFile(filepath.Join(c.logDir, p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(c.t, err)
	cmd := exec.Command(filepath.Join(binDir, bin))
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(c.t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	c.mu.Lock()
	p.cmd, p.done = cmd, done
	c.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *cluster) kill(p *proc) {
	c.mu.Lock()
	cmd, done := p.cmd, p.done
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func (c *cluster) waitServing(p *proc) {
	c.t.Helper()
	conn, err := grpcx.Dial(p.addr)
	require.NoError(c.t, err)
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 30*time.Second, 20*time.Millisecond, "%s never served", p.name)
}

func (c *cluster) dumpLogs() {
	entries, _ := os.ReadDir(c.logDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(c.logDir, e.Name()))
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		c.t.Logf("--- %s (tail) ---\n%s", e.Name(), b)
	}
}

// generate writes a synthetic closing and returns its id.
func (c *cluster) generate(employees int, seed uint64) int64 {
	c.t.Helper()
	s, err := synth.Generate(context.Background(), c.pool, synth.Config{Employees: employees, Seed: seed})
	require.NoError(c.t, err)
	return s.ClosingID
}

func (c *cluster) consolidate(req *consolidationv1.ConsolidateRequest) *consolidationv1.ConsolidateResponse {
	c.t.Helper()
	resp, err := c.client.Consolidate(context.Background(), req)
	require.NoError(c.t, err)
	return resp
}

// waitFor polls GetConsolidation until cond holds.
func (c *cluster) waitFor(runID int64, within time.Duration, what string, cond func(*consolidationv1.Consolidation) bool) *consolidationv1.Consolidation {
	c.t.Helper()
	var got *consolidationv1.Consolidation
	require.Eventually(c.t, func() bool {
		resp, err := c.client.GetConsolidation(context.Background(), runRef(runID))
		if err != nil {
			return false
		}
		got = resp.GetConsolidation()
		return cond(got)
	}, within, 20*time.Millisecond, "consolidation %d: %s", runID, what)
	return got
}

// waitEnd polls GetConsolidation until the run has ended.
func (c *cluster) waitEnd(runID int64, within time.Duration) *consolidationv1.Consolidation {
	c.t.Helper()
	var final *consolidationv1.Consolidation
	require.Eventually(c.t, func() bool {
		resp, err := c.client.GetConsolidation(context.Background(), &consolidationv1.GetConsolidationRequest{
			Ref: &consolidationv1.GetConsolidationRequest_ConsolidationId{ConsolidationId: runID}})
		if err != nil || resp.GetConsolidation().GetFinishedAt() == nil {
			return false
		}
		final = resp.GetConsolidation()
		return true
	}, within, 50*time.Millisecond, "consolidation %d did not end within %s", runID, within)
	return final
}

func (c *cluster) estado(closingID int64) string {
	c.t.Helper()
	cl, err := store.GetClosing(context.Background(), c.pool, closingID)
	require.NoError(c.t, err)
	return cl.Estado
}

// expected applies the rules in this process to the whole closing: the rows any
// run of the service must produce.
func expected(t *testing.T, pool *pgxpool.Pool, closingID int64) []rules.Consolidated {
	t.Helper()
	ctx := context.Background()
	closing, err := store.GetClosing(ctx, pool, closingID)
	require.NoError(t, err)
	src, err := store.ReadChunk(ctx, pool, closing, 0, math.MaxInt64)
	require.NoError(t, err)
	out := make([]rules.Consolidated, 0, len(src.Employees))
	for _, s := range src.Employees {
		rec, err := rules.Consolidate(s, src.Month)
		require.NoError(t, err)
		out = append(out, rec)
	}
	sortByRUT(out)
	return out
}

// requireResultsEqual compares the full result set of a closing with want.
func requireResultsEqual(t *testing.T, pool *pgxpool.Pool, closingID int64, want []rules.Consolidated) {
	t.Helper()
	got, err := store.ReadResults(context.Background(), pool, closingID)
	require.NoError(t, err)
	require.Equal(t, len(want), len(got), "consolidated employees of closing %d", closingID)
	for i := range want {
		require.Equal(t, want[i], got[i], "employee %d (libro row %d)", i, want[i].EmpleadoOrigenID)
	}
}

func runRef(id int64) *consolidationv1.GetConsolidationRequest {
	return &consolidationv1.GetConsolidationRequest{Ref: &consolidationv1.GetConsolidationRequest_ConsolidationId{ConsolidationId: id}}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func sortByRUT(recs []rules.Consolidated) {
	slices.SortFunc(recs, func(a, b rules.Consolidated) int { return cmp.Compare(a.RUT, b.RUT) })
}
