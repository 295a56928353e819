package e2e_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/schema"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/store/storetest"
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
	// faultinject compiles the worker's fault injection (FAULT_* variables),
	// which a production build leaves out.
	build := exec.Command("go", "build", "-tags", "faultinject", "-o", dir,
		"github.com/nominacl/consolidation/coordinator/cmd/coordinator",
		"github.com/nominacl/consolidation/coordinator/cmd/devcluster", // README's walk-through generates with it
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

type clusterOptions struct {
	// schema of the test database: the service's own (default), or the payroll
	// application's as Django created it, with the services connecting as the
	// least-privileged role of docs/database.md (the test itself connects as owner).
	schema    pgtest.Schema
	workers   int
	coordEnv  []string // extra coordinator environment
	workerEnv []string // extra worker environment
	redisURL  string   // default: the shared test Redis
	// privateRedis starts a redis-server of the test's own, which the test may
	// flush, kill and restart (cluster.redisServer).
	privateRedis bool
	// privatePostgres starts a PostgreSQL server of the test's own (own schema
	// only), which the test may restart (cluster.pgServer).
	privatePostgres bool
	// databaseURL is a migrated database of the test's own, which the services
	// and the test connect to (own schema only; default: a new database of the
	// shared test PostgreSQL).
	databaseURL string
	// pooler puts a PgBouncer in transaction pooling mode between the services
	// and the private PostgreSQL (cluster.bouncer), and sets DATABASE_POOLER; the
	// test's own pool still reaches PostgreSQL directly.
	pooler bool
	// coordinators is how many coordinator replicas share the database (default 1).
	coordinators int
	// tls runs the cluster on mTLS with these certificates and policies (default:
	// plaintext); c.client then calls as launch.AppIdentity.
	tls *launch.DevTLS
}

// cluster is a database, a Redis key space, workers and a coordinator of one test.
type cluster struct {
	t       *testing.T
	dbURL   string
	pool    *pgxpool.Pool
	redis   pgtest.Redis
	workers []*launch.Process
	coord   *launch.Process
	client  consolidationv1.ConsolidationServiceClient
	logDir  string

	redisServer *localdb.RedisServer    // with privateRedis
	pgServer    *localdb.PostgresServer // with privatePostgres
	bouncer     *localdb.PgBouncer      // with pooler
	// coords are every coordinator replica (coord is the first) and clients a
	// client of each, in order.
	coords  []*launch.Process
	clients []consolidationv1.ConsolidationServiceClient
}

func newCluster(t *testing.T, opts clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, redis: pgtest.NewRedis(t), logDir: t.TempDir()}
	switch {
	case opts.databaseURL != "":
		require.Equal(t, pgtest.OwnSchema, opts.schema, "a database of the test's own has the service's own schema")
		c.dbURL = opts.databaseURL
	case opts.privatePostgres:
		require.Equal(t, pgtest.OwnSchema, opts.schema, "a private PostgreSQL has the service's own schema")
		c.pgServer, c.dbURL = privatePostgres(t)
	default:
		c.dbURL = pgtest.NewDatabaseWith(t, opts.schema)
	}
	serviceURL := c.dbURL
	if opts.schema == pgtest.DjangoSchema {
		serviceURL = pgtest.NewRuntimeRole(t, c.dbURL)
	}
	if opts.pooler {
		require.True(t, opts.privatePostgres, "the pooler stands in front of a private PostgreSQL")
		bouncer, err := localdb.StartPgBouncer(context.Background(), c.pgServer, localdb.PgBouncerConfig{})
		require.NoError(t, err)
		t.Cleanup(bouncer.Stop)
		c.bouncer, serviceURL = bouncer, bouncer.URL("e2e")
		opts.coordEnv = append(opts.coordEnv, "DATABASE_POOLER=transaction")
		opts.workerEnv = append(opts.workerEnv, "DATABASE_POOLER=transaction")
	}
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
	coordEnv := []string{"REDIS_PREFIX=" + c.redis.Prefix, "RECONCILE_EVERY=300ms", "RETRY_BASE_DELAY=50ms", "SHUTDOWN_DRAIN=5s",
		"LEASE_TTL=3s"}
	if opts.workers == 0 {
		coordEnv = append(coordEnv, "WORKER_TARGET="+freeAddr(t)) // nobody listens there
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	lc, err := launch.StartCluster(context.Background(), launch.ClusterConfig{BinDir: binDir, LogDir: c.logDir,
		DatabaseURL: serviceURL, RedisURL: c.redis.URL, Workers: opts.workers,
		WorkerEnv:      append([]string{"SHUTDOWN_DRAIN=5s"}, opts.workerEnv...),
		CoordinatorEnv: append(coordEnv, opts.coordEnv...),
		DeathSignal:    syscall.SIGKILL, Coordinators: opts.coordinators, TLS: opts.tls})
	require.NoError(t, err)
	// Every log line the processes wrote is one JSON object without a repeated
	// key: checked once they are stopped (cleanups run last-registered first).
	t.Cleanup(func() { checkLogsStrict(t, c.logDir) })
	t.Cleanup(lc.Kill)
	c.workers, c.coord, c.client = lc.Workers, lc.Coordinator, lc.Client
	c.coords, c.clients = lc.Coordinators, lc.Clients
	return c
}

// privatePostgres starts a PostgreSQL server of the test's own, stopped when the
// test ends, with a database migrated to the service's schema, and returns it and
// that database's URL.
func privatePostgres(t *testing.T) (*localdb.PostgresServer, string) {
	t.Helper()
	ctx := context.Background()
	srv, err := localdb.StartPostgres(ctx)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE e2e")
	require.NoError(t, admin.Close(ctx))
	require.NoError(t, err)
	url := srv.URL("e2e")
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = schema.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), pool)
	require.NoError(t, err)
	return srv, url
}

// forEachSchema runs a test on each database schema the service must work on: its
// own tables, and the payroll application's as Django created them.
func forEachSchema(t *testing.T, test func(t *testing.T, schema pgtest.Schema)) {
	t.Helper()
	for _, s := range []pgtest.Schema{pgtest.OwnSchema, pgtest.DjangoSchema} {
		t.Run(s.String(), func(t *testing.T) {
			t.Parallel()
			test(t, s)
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := launch.FreeAddr()
	require.NoError(t, err)
	return addr
}

// start starts a process again after a kill, logging to the same file.
func (c *cluster) start(p *launch.Process) {
	c.t.Helper()
	require.NoError(c.t, p.Start())
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *cluster) kill(p *launch.Process) { p.Kill() }

func (c *cluster) waitServing(p *launch.Process) {
	c.t.Helper()
	require.NoError(c.t, launch.WaitServing(context.Background(), p.Addr), "%s never served", p.Name)
}

func (c *cluster) dumpLogs() {
	entries, _ := os.ReadDir(c.logDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(c.logDir, e.Name()))
		// A worker commits hundreds of chunks a minute; those lines would push
		// everything else out of the tail.
		b = regexp.MustCompile(`(?m)^.*"msg":"chunk committed".*\n`).ReplaceAll(b, nil)
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

func (c *cluster) estado(closingID int64) domain.Estado {
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
	got, err := storetest.ReadResults(context.Background(), pool, closingID)
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
