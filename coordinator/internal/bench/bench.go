// Package bench is `make bench`: it consolidates synthetic closings of growing size
// through a real coordinator and workers on a throwaway PostgreSQL and Redis, and
// measures each against the floor: the time to COPY the same result rows back into
// the same tables in one stream.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/synth"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// Config says what to measure.
type Config struct {
	BinDir    string
	Sizes     []int
	Workers   int
	InFlight  int           // WORKER_MAX_IN_FLIGHT of both services; 0 leaves each its default
	Policy    domain.Policy // "" (service default), seed, cost_weighted
	ChunkSize int
	SkipFloor bool
	CSV       string // also write the table as CSV here
	// Variants measures, on the last closing, the floor under schema variants: each
	// result-table constraint removed, and the old Celery design's extra indexes added.
	Variants bool
	// Schemas to measure, each in a database of its own on the same server, one
	// after the other (default: SchemaOwn).
	Schemas []Schema
	// Repeat measures every figure this many times (default 1); the tables give
	// the median, lowest and highest. A size's wall and floor alternate.
	Repeat int
	// WarmRuns is how many 133-employee closings follow the cold one on each
	// fresh cluster (default 3).
	WarmRuns int
	// SmallFirst is how many 133-employee closings are consolidated on the same
	// services before each measured closing, after the result tables were
	// emptied and analyzed (small_first.go); 0 measures each closing on the
	// tables the previous ones left.
	SmallFirst int
	// Statements prints, for each size, the statements pg_stat_statements saw
	// during the closing and during its floor (the last repeat).
	Statements bool
	// ProfileDir, when set, receives CPU profiles of every service during the
	// first repeat of the largest size (ProfileSeconds long, default 10).
	ProfileDir     string
	ProfileSeconds int
	// CommandLine is printed with the tables: the command that produced them.
	CommandLine string
	// DashboardTabs, when positive, serves the coordinator's dashboard and has
	// this many simulated tabs watch every run (openTabs).
	DashboardTabs int
	// DashboardPaired alternates the measured closings without and with the
	// tabs (the first without), each on a coordinator and workers started
	// afresh, so each closing's peak RSS is its own (docs/benchmarks.md, "The
	// dashboard").
	DashboardPaired bool
	dashboardAddr   string // UI_ADDR, set by runSchema with DashboardTabs
	// PostgresSettings ("name=value") are given to the throwaway PostgreSQL after
	// its own (settings.go), so they override them.
	PostgresSettings []string
	// DatabaseURL, when set, is an existing database to measure on instead of a
	// throwaway server (the Django schema's database is created beside it).
	DatabaseURL string
	// Rerun consolidates each measured closing a second time, forced, right after
	// its first run, and reports that wall against the first's.
	Rerun bool
}

// Schema is the database a benchmark runs on.
type Schema string

const (
	// SchemaOwn is the tables the service's migrations create: only the
	// contract's constraints on the result tables.
	SchemaOwn Schema = "own"
	// SchemaDjango is the payroll application's tables as Django creates them
	// (testdata/django, with the old Celery design's indexes), then the service's migrations:
	// production's schema.
	SchemaDjango Schema = "django"
)

// ParseSchemas reads a comma list of schemas ("own", "django").
func ParseSchemas(list string) ([]Schema, error) {
	var out []Schema
	for _, s := range strings.Split(list, ",") {
		switch sc := Schema(strings.TrimSpace(s)); sc {
		case SchemaOwn, SchemaDjango:
			out = append(out, sc)
		default:
			return nil, fmt.Errorf("unknown schema %q (want own or django)", s)
		}
	}
	return out, nil
}

// Result is one measurement: one closing consolidated, then its floor.
type Result struct {
	Schema      Schema
	Employees   int
	Repeat      int // 1, 2, ...
	Chunks      int
	Records     int64
	Wall        time.Duration
	CoordRSS    int64
	WorkerRSS   []int64
	Floor       time.Duration
	FloorRecord int64
	// Rerun is the wall of a forced run of the same closing right after (Config.Rerun).
	Rerun time.Duration
	// ParallelFloor is the same rows copied in Streams streams at once
	// (parallelFloor): as many as the workers write with.
	ParallelFloor time.Duration
	Streams       int
	Estado        string
	// CPU seconds used during the run: the coordinator, the workers, and the whole
	// machine (which includes PostgreSQL); MachineBusy is the share of all cores busy.
	CoordCPU, WorkersCPU, MachineCPU float64
	MachineBusy                      float64
	// PostgresCPU is the CPU seconds of the PostgreSQL server (every process of
	// it, serverCPU) during the run, -1 when the server is not on this machine;
	// WALBytes the WAL it wrote meanwhile (pg_current_wal_lsn before and after).
	PostgresCPU float64
	WALBytes    int64
	// Autovacuum passes (vacuums and analyzes of any table) that PostgreSQL ran
	// during the closing and during its floor: background work the writes set off,
	// which lands inside one measurement and not another (autovacuumPasses).
	AutovacuumsWall, AutovacuumsFloor int64
	// ResultSeqScans is how many sequential scans of nomina_empleado_consolidado
	// began during the closing (resultSeqScans).
	ResultSeqScans int64
	// RunID is the run's; Called, Answered and Ended when the Consolidate call
	// was made, when it returned, and when the final Watch message arrived.
	RunID                   int64
	Called, Answered, Ended time.Time
	// Tabs is how many dashboard tabs watched the closing.
	Tabs int
}

// Figure is what the repeats of one size on one schema measured.
type Figure struct {
	Schema    Schema
	Employees int
	Chunks    int
	Records   int64
	Runs      int
	// Wall and Floor in seconds; Ratio is wall/floor of each repeat; the per-row
	// costs are µs per result row.
	Wall, Floor, Ratio Spread
	// ParallelFloor and ParallelRatio (wall/parallel floor of each repeat), with
	// Streams streams.
	ParallelFloor, ParallelRatio Spread
	// Rerun and RerunRatio (re-run wall / first wall of each repeat), when measured.
	Rerun, RerunRatio       Spread
	Streams                 int
	WallPerRow, FloorPerRow Spread
	CoordCPU, WorkersCPU    Spread
	MachineCPU              Spread
	// PerThousand are the CPU seconds (coordinator, workers, PostgreSQL, the
	// three together) and WAL MiB of each repeat per 1,000 employees; PostgreSQL's
	// and the sum are empty when the server is not on this machine.
	PerThousand         struct{ Coord, Workers, Postgres, Total, WALMiB Spread }
	CoordRSS, WorkerRSS int64 // the highest peak of any repeat (of any worker)
	// CoordPeak is the coordinator's peak RSS of each repeat, in MiB.
	CoordPeak Spread
	// Tabs is the dashboard tabs that watched these closings.
	Tabs int
	// AutovacuumsWall and AutovacuumsFloor add up the autovacuum passes of the
	// repeats (Result).
	AutovacuumsWall, AutovacuumsFloor int64
}

// Latency is the 133-employee closing as a client sees it, from the Consolidate
// call to the final WatchConsolidation message: cold (the first closing after the
// services start) and warm (the closings after it, on the same services).
type Latency struct {
	Schema     Schema
	Employees  int
	Cold, Warm Spread // seconds
}

// Report is everything a benchmark run measured.
type Report struct {
	Results   []Result
	Figures   []Figure
	Latencies []Latency
}

// latencyEmployees is the size of the closing whose cold and warm latency is measured.
const latencyEmployees = 133

// Run runs the benchmark on each schema and prints the tables to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	var rep Report
	cfg.Repeat = max(cfg.Repeat, 1)
	cfg.WarmRuns = cmp.Or(cfg.WarmRuns, 3)
	cfg.ProfileSeconds = cmp.Or(cfg.ProfileSeconds, 10)
	logDir, err := os.MkdirTemp("", "consolidation-bench-")
	if err != nil {
		return rep, err
	}
	if cfg.CommandLine != "" {
		fmt.Fprintf(out, "command: %s\n", cfg.CommandLine)
	}
	fmt.Fprintf(out, "starting PostgreSQL and Redis (logs in %s)\n", logDir)
	printSettings(out, cfg)
	sc := launch.StoresConfig{Database: "bench", DatabaseURL: cfg.DatabaseURL}
	if cfg.Statements {
		sc.PostgresSettings = append(sc.PostgresSettings, statementsSettings...)
	}
	sc.PostgresSettings = append(sc.PostgresSettings, cfg.PostgresSettings...)
	stores, err := launch.StartStores(ctx, sc)
	if err != nil {
		return rep, err
	}
	defer stores.Stop()
	schemas := cfg.Schemas
	if len(schemas) == 0 {
		schemas = []Schema{SchemaOwn}
	}
	for _, sc := range schemas {
		lat, rs, err := runSchema(ctx, cfg, stores, sc, logDir, out)
		rep.Results = append(rep.Results, rs...)
		if lat.Cold.N > 0 {
			rep.Latencies = append(rep.Latencies, lat)
		}
		if err != nil {
			return rep, err
		}
	}
	rep.Figures = Figures(rep.Results)
	Print(out, cfg, rep)
	if cfg.CSV != "" {
		if err := writeCSV(cfg.CSV, rep.Figures); err != nil {
			return rep, err
		}
		fmt.Fprintf(out, "\nCSV in %s (chart: gnuplot -e \"csv='%s'\" docs/benchmarks.gp > docs/benchmarks.png)\n", cfg.CSV, cfg.CSV)
	}
	return rep, nil
}

// schemaDatabase creates the database of a schema next to the stores' own and
// returns its URL: the stores' database itself for SchemaOwn; for SchemaDjango a
// new one whose tables Django's migrate creates first.
func schemaDatabase(ctx context.Context, stores *launch.Stores, sc Schema, out io.Writer) (string, error) {
	if sc == SchemaOwn {
		return stores.DatabaseURL, nil
	}
	conn, err := pgx.Connect(ctx, stores.DatabaseURL)
	if err != nil {
		return "", err
	}
	name := "bench_" + string(sc)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	conn.Close(ctx)
	if err != nil {
		return "", fmt.Errorf("creating the %s database: %w", sc, err)
	}
	u, err := url.Parse(stores.DatabaseURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	fmt.Fprintf(out, "creating the payroll application's tables with Django (testdata/django)\n")
	django, err := localdb.Django()
	if err != nil {
		return "", err
	}
	if err := django.Migrate(ctx, u.String()); err != nil {
		return "", err
	}
	return u.String(), nil
}

// runSchema measures every size on one schema: first the cold and warm latency of
// a small closing, each repeat on services started afresh, then every size on the
// last of those clusters.
func runSchema(ctx context.Context, cfg Config, stores *launch.Stores, sc Schema, logDir string, out io.Writer) (Latency, []Result, error) {
	lat := Latency{Schema: sc, Employees: latencyEmployees}
	fmt.Fprintf(out, "schema %s\n", sc)
	if cfg.DashboardTabs > 0 {
		addr, err := launch.FreeAddr()
		if err != nil {
			return lat, nil, err
		}
		cfg.dashboardAddr = addr
		fmt.Fprintf(out, "  %d dashboard tabs watch every run on http://%s/ui/\n", cfg.DashboardTabs, addr)
	}
	dbURL, err := schemaDatabase(ctx, stores, sc, out)
	if err != nil {
		return lat, nil, err
	}
	if err := launch.Migrate(ctx, cfg.BinDir, dbURL, filepath.Join(logDir, "migrate-"+string(sc)+".log")); err != nil {
		return lat, nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return lat, nil, err
	}
	defer pool.Close()

	var cluster *launch.Cluster
	defer func() {
		if cluster != nil {
			cluster.Stop()
		}
	}()
	var cold, warm []float64
	var coldSteps, warmSteps latencySteps
	for rep := range cfg.Repeat {
		// The closings first, so the services start just before the first one.
		closings := make([]int64, 1+cfg.WarmRuns)
		for i := range closings {
			gen, err := synth.Generate(ctx, pool, synth.Config{Employees: latencyEmployees, Seed: uint64(1000*rep + i + 1)})
			if err != nil {
				return lat, nil, err
			}
			closings[i] = gen.ClosingID
		}
		if cluster != nil {
			cluster.Stop()
		}
		if cluster, err = startCluster(ctx, cfg, stores, sc, dbURL, logDir, rep); err != nil {
			return lat, nil, err
		}
		for i, closing := range closings {
			r, err := consolidate(ctx, cluster.Client, cfg, closing)
			if err != nil {
				return lat, nil, err
			}
			steps := &warmSteps
			if i == 0 {
				cold = append(cold, r.Wall.Seconds())
				steps = &coldSteps
			} else {
				warm = append(warm, r.Wall.Seconds())
			}
			if err := steps.add(ctx, pool, r); err != nil {
				return lat, nil, err
			}
		}
	}
	lat.Cold, lat.Warm = spreadOf(cold), spreadOf(warm)
	fmt.Fprintf(out, "  %s, %d employees as a client sees it: cold %s, warm %s\n", sc, latencyEmployees,
		lat.Cold.seconds(), lat.Warm.seconds())
	coldSteps.print(out, "cold")
	warmSteps.print(out, "warm")

	services, coord := cluster.Processes(), cluster.Coordinator
	var results []Result
	for si, n := range cfg.Sizes {
		fmt.Fprintf(out, "generating %d employees ...\n", n)
		gen, err := synth.Generate(ctx, pool, synth.Config{Employees: n, Seed: uint64(n)})
		if err != nil {
			return lat, results, err
		}
		small, err := smallClosings(ctx, pool, cfg, n)
		if err != nil {
			return lat, results, err
		}
		if err := settleSources(ctx, pool); err != nil {
			return lat, results, err
		}
		for rep := range cfg.Repeat {
			runCfg := cfg
			if cfg.DashboardPaired {
				if rep%2 == 0 {
					runCfg.DashboardTabs = 0
				}
				cluster.Stop()
				cluster = nil
				if cluster, err = startCluster(ctx, cfg, stores, sc, dbURL, logDir, 1000*(si+1)+rep); err != nil {
					return lat, results, err
				}
				services, coord = cluster.Processes(), cluster.Coordinator
			}
			if rep > 0 {
				if err := resetClosing(ctx, pool, gen.ClosingID); err != nil {
					return lat, results, err
				}
			}
			if cfg.SmallFirst > 0 {
				if err := emptyResults(ctx, pool); err != nil {
					return lat, results, err
				}
				if err := runSmallFirst(ctx, cluster.Client, small[rep], out); err != nil {
					return lat, results, err
				}
			}
			for _, s := range services {
				resetPeakRSS(s.Pid())
			}
			if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
				return lat, results, err
			}
			last := rep == cfg.Repeat-1
			if cfg.Statements && last {
				if err := resetStatements(ctx, pool); err != nil {
					return lat, results, err
				}
			}
			var profiles func() error
			profileLabel := fmt.Sprintf("%s-%d-tabs%d", sc, n, runCfg.DashboardTabs)
			if cfg.ProfileDir != "" && si == len(cfg.Sizes)-1 && (rep == 0 || cfg.DashboardPaired && rep == 1) {
				profiles = startProfiles(ctx, cfg, services, profileLabel)
			}
			cpuBefore := make([]float64, len(services))
			for i, s := range services {
				cpuBefore[i] = procCPU(s.Pid())
			}
			busyBefore, totalBefore := machineCPU()
			postmaster, walBefore, err := serverReading(ctx, pool)
			if err != nil {
				return lat, results, err
			}
			pgBefore := serverCPU(postmaster)
			avBefore, err := autovacuumPasses(ctx, pool)
			if err != nil {
				return lat, results, err
			}
			scansBefore, err := resultSeqScans(ctx, pool)
			if err != nil {
				return lat, results, err
			}
			r, err := consolidate(ctx, cluster.Client, runCfg, gen.ClosingID)
			if err != nil {
				return lat, results, err
			}
			if profiles != nil {
				// What the coordinator allocated, since it started (alloc_space), and
				// holds now (inuse_space): go tool pprof -sample_index=alloc_space.
				path := filepath.Join(cfg.ProfileDir, profileLabel+"-coordinator-heap.pprof")
				if err := fetchProfile(ctx, "http://"+coord.PprofAddr+"/debug/pprof/heap", path); err != nil {
					fmt.Fprintf(out, "  heap profile: %v\n", err)
				}
			}
			if r.ResultSeqScans, err = resultSeqScans(ctx, pool); err != nil {
				return lat, results, err
			}
			r.ResultSeqScans -= scansBefore
			busyAfter, totalAfter := machineCPU()
			r.PostgresCPU = serverCPU(postmaster) - pgBefore
			if postmaster == 0 {
				r.PostgresCPU = -1
			}
			if err := pool.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint", walBefore).Scan(&r.WALBytes); err != nil {
				return lat, results, err
			}
			if r.AutovacuumsWall, err = autovacuumPasses(ctx, pool); err != nil {
				return lat, results, err
			}
			r.AutovacuumsWall -= avBefore
			r.MachineCPU = busyAfter - busyBefore
			r.MachineBusy = r.MachineCPU / (totalAfter - totalBefore)
			for i, s := range services {
				d := procCPU(s.Pid()) - cpuBefore[i]
				if s == coord {
					r.CoordCPU = d
				} else {
					r.WorkersCPU += d
				}
			}
			r.Schema, r.Employees, r.Repeat = sc, n, rep+1
			r.CoordRSS = peakRSS(coord.Pid())
			for _, s := range cluster.Workers {
				r.WorkerRSS = append(r.WorkerRSS, peakRSS(s.Pid()))
			}
			if profiles != nil {
				if err := profiles(); err != nil {
					fmt.Fprintf(out, "  CPU profiles: %v\n", err)
				}
			}
			if cfg.Statements && last {
				ss, err := topStatements(ctx, pool, 15)
				if err != nil {
					return lat, results, err
				}
				printStatements(out, fmt.Sprintf("%s, %d employees, the closing", sc, n), ss)
				if err := resetStatements(ctx, pool); err != nil {
					return lat, results, err
				}
			}
			if cfg.Rerun {
				again, err := rerun(ctx, cluster.Client, cfg, gen.ClosingID)
				if err != nil {
					return lat, results, err
				}
				if again.Estado != r.Estado {
					return lat, results, fmt.Errorf("the forced re-run of closing %d ended %s, the first run %s", gen.ClosingID, again.Estado, r.Estado)
				}
				r.Rerun = again.Wall
			}
			if !cfg.SkipFloor {
				if r.Floor, r.FloorRecord, r.AutovacuumsFloor, err = floor(ctx, pool, gen.ClosingID); err != nil {
					return lat, results, err
				}
				r.Streams = cfg.copyStreams()
				if r.ParallelFloor, err = parallelFloor(ctx, pool, gen.ClosingID, r.Streams); err != nil {
					return lat, results, err
				}
			}
			if cfg.Statements && last && !cfg.SkipFloor {
				ss, err := topStatements(ctx, pool, 6)
				if err != nil {
					return lat, results, err
				}
				printStatements(out, fmt.Sprintf("%s, %d employees, its floor", sc, n), ss)
			}
			results = append(results, r)
			fmt.Fprintf(out, "  %s, %d employees, repeat %d: %s, %s, floor %s, parallel floor %s (%d streams); CPU s: coordinator %.2f, workers %.2f, PostgreSQL %.2f, machine %.2f (%.0f%% of all cores busy); WAL %.1f MiB; autovacuum passes: %d in the closing, %d in the floor; scans of the employee result table in the closing: %d\n",
				sc, n, rep+1, duration(r.Wall), r.Estado, duration(r.Floor), duration(r.ParallelFloor), r.Streams, r.CoordCPU, r.WorkersCPU, r.PostgresCPU, r.MachineCPU, 100*r.MachineBusy, float64(r.WALBytes)/(1<<20),
				r.AutovacuumsWall, r.AutovacuumsFloor, r.ResultSeqScans)
			if cfg.DashboardTabs > 0 {
				fmt.Fprintf(out, "    %d dashboard tabs: coordinator peak RSS %s\n", r.Tabs, mib(r.CoordRSS))
			}
		}
	}
	if cfg.Variants && len(results) > 0 {
		list := schemaVariants
		if sc == SchemaDjango {
			list = djangoVariants
		}
		if err := variants(ctx, pool, out, results[len(results)-1], list); err != nil {
			return lat, results, err
		}
	}
	return lat, results, nil
}

// startCluster starts a coordinator and the workers on a schema's database.
func startCluster(ctx context.Context, cfg Config, stores *launch.Stores, sc Schema, dbURL, logDir string, rep int) (*launch.Cluster, error) {
	clusterLogs := filepath.Join(logDir, fmt.Sprintf("%s-%d", sc, rep+1))
	if err := os.MkdirAll(clusterLogs, 0o755); err != nil {
		return nil, err
	}
	env, _ := serviceEnv(cfg)
	coordEnv := env
	if cfg.dashboardAddr != "" {
		coordEnv = append(append([]string{}, env...), "UI_ADDR="+cfg.dashboardAddr)
	}
	return launch.StartCluster(ctx, launch.ClusterConfig{BinDir: cfg.BinDir, LogDir: clusterLogs,
		DatabaseURL: dbURL, RedisURL: stores.RedisURL, Workers: cfg.Workers, WorkerMetrics: true, Pprof: cfg.ProfileDir != "",
		WorkerEnv: env, CoordinatorEnv: coordEnv})
}

// resetClosing takes a consolidated closing back to where it was before its first
// run, so the next repeat measures the same work: no result rows to replace.
func resetClosing(ctx context.Context, pool *pgxpool.Pool, closing int64) error {
	if err := deleteResults(ctx, pool, closing); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, sqlSettleResults); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = 'verificado_sin_discrepancias' WHERE id = $1", closing)
	return err
}

// settleSources vacuums and analyzes the database after a closing was generated,
// as a closing loaded well before its close would be: otherwise autovacuum's
// first pass over millions of freshly inserted source rows lands in the first
// measured closing or its floor (seen: 7 s of a core on the libro lines during
// the first floor of a 100,000-employee closing).
func settleSources(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, "VACUUM (ANALYZE)")
	return err
}

// sqlSettleResults vacuums and analyzes the result tables after their rows were
// deleted, so a measurement (a closing, a floor) starts with nothing left for
// autovacuum to do: a plain VACUUM leaves the deletes counted as changes since the
// last analyze, and autovacuum's analyze of millions of them then landed inside
// the floor that followed (7–8 passes in every floor of a 100,000-employee
// closing, none in the closings: the floor was the one slowed down).
const sqlSettleResults = "VACUUM (ANALYZE) nomina_empleado_consolidado, nomina_concepto_empleado_consolidado"

// autovacuumPasses is how many vacuums and analyzes autovacuum has finished on the
// database's tables so far (PostgreSQL reports each as it ends one table).
func autovacuumPasses(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint
		FROM pg_stat_user_tables`).Scan(&n)
	return n, err
}

// deleteResults deletes a closing's result rows, concepts first (a schema variant
// may have no cascade).
func deleteResults(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, closing int64) error {
	if _, err := q.Exec(ctx, `DELETE FROM nomina_concepto_empleado_consolidado WHERE empleado_consolidado_id IN
		(SELECT id FROM nomina_empleado_consolidado WHERE cierre_id = $1)`, closing); err != nil {
		return err
	}
	_, err := q.Exec(ctx, "DELETE FROM nomina_empleado_consolidado WHERE cierre_id = $1", closing)
	return err
}

// startProfiles starts a CPU profile of every service (ProfileSeconds long) and
// returns the function that waits for them and writes them to ProfileDir.
func startProfiles(ctx context.Context, cfg Config, services []*launch.Process, label string) func() error {
	errs := make(chan error, len(services))
	for _, p := range services {
		go func() {
			path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%s.pprof", label, p.Name))
			errs <- fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.PprofAddr, cfg.ProfileSeconds), path)
		}()
	}
	return func() error {
		var all []error
		for range services {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func consolidate(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config, closing int64) (Result, error) {
	return consolidateThen(ctx, client, cfg, closing, func() {})
}

// rerun consolidates a closing whose results exist again, forced: its previous
// results stay readable until the run's own replace them (docs/lifecycle.md).
func rerun(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config, closing int64) (Result, error) {
	return watchRun(ctx, client, cfg, &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: int32(cfg.ChunkSize),
		ChunkPolicy: domainpb.PolicyToProto(cfg.Policy), Force: true}, func() {})
}

// consolidateRetries counts the Consolidate calls retried after UNAVAILABLE.
var consolidateRetries atomic.Int64

// consolidateThen is consolidate calling started once Consolidate has returned
// (whether it succeeded or not).
func consolidateThen(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config, closing int64,
	started func()) (Result, error) {
	return watchRun(ctx, client, cfg, &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: int32(cfg.ChunkSize),
		ChunkPolicy: domainpb.PolicyToProto(cfg.Policy)}, started)
}

// watchRun starts a run, calls started once Consolidate has returned, and
// watches the run to its end: its wall is from the call to the final message.
func watchRun(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config,
	req *consolidationv1.ConsolidateRequest, started func()) (Result, error) {
	tabs := 0
	if cfg.dashboardAddr != "" {
		tabs = cfg.DashboardTabs
	}
	start := time.Now()
	resp, err := client.Consolidate(ctx, req)
	// A refusal UNAVAILABLE (a dependency check timed out on a loaded machine) is
	// retried, as callers do; the wall still counts from the first call.
	for try := 1; status.Code(err) == codes.Unavailable && try <= 20; try++ {
		consolidateRetries.Add(1)
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(time.Duration(min(try, 10)) * 200 * time.Millisecond):
		}
		resp, err = client.Consolidate(ctx, req)
	}
	answered := time.Now()
	started()
	if err != nil {
		return Result{}, err
	}
	if tabs > 0 {
		closeTabs := openTabs(ctx, cfg.dashboardAddr, tabs, resp.GetConsolidationId())
		defer func() {
			if err := closeTabs(); err != nil {
				fmt.Fprintf(os.Stderr, "dashboard tabs of consolidation %d: %v\n", resp.GetConsolidationId(), err)
			}
		}()
	}
	stream, err := client.WatchConsolidation(ctx, &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: resp.GetConsolidationId()}})
	if err != nil {
		return Result{}, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return Result{}, fmt.Errorf("watching consolidation %d: %w", resp.GetConsolidationId(), err)
		}
		if f := msg.GetFinal(); f != nil {
			end := time.Now()
			return Result{Wall: end.Sub(start), Chunks: int(f.GetTotalChunks()), Records: f.GetRecordsCreated(),
				Estado: f.GetEstado(), RunID: resp.GetConsolidationId(), Called: start, Answered: answered, Ended: end, Tabs: tabs}, nil
		}
	}
}

// copyStreams is how many chunks the workers write at once: the parallel
// floor's streams.
func (c Config) copyStreams() int {
	inFlight := c.InFlight
	if inFlight == 0 {
		inFlight = config.DefaultWorkerMaxInFlight
	}
	return c.Workers * inFlight
}

// Figures summarizes the results of each schema and size over its repeats, in
// the order first measured.
func Figures(rs []Result) []Figure {
	type key struct {
		sc   Schema
		n    int
		tabs int
	}
	var order []key
	groups := map[key][]Result{}
	for _, r := range rs {
		k := key{r.Schema, r.Employees, r.Tabs}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []Figure
	for _, k := range order {
		g := groups[k]
		f := Figure{Schema: k.sc, Employees: k.n, Chunks: g[0].Chunks, Records: g[0].Records, Runs: len(g), Tabs: k.tabs}
		var wall, floor, ratio, pfloor, pratio, again, againRatio, wallRow, floorRow, coord, workers, machine, peak []float64
		var kCoord, kWorkers, kPostgres, kTotal, kWAL []float64
		for _, r := range g {
			peak = append(peak, float64(r.CoordRSS)/(1<<20))
			k := float64(r.Employees) / 1000
			kCoord, kWorkers = append(kCoord, r.CoordCPU/k), append(kWorkers, r.WorkersCPU/k)
			kWAL = append(kWAL, float64(r.WALBytes)/(1<<20)/k)
			if r.PostgresCPU >= 0 {
				kPostgres = append(kPostgres, r.PostgresCPU/k)
				kTotal = append(kTotal, (r.CoordCPU+r.WorkersCPU+r.PostgresCPU)/k)
			}
			wall = append(wall, r.Wall.Seconds())
			wallRow = append(wallRow, us(r.Wall, r.Records))
			coord, workers, machine = append(coord, r.CoordCPU), append(workers, r.WorkersCPU), append(machine, r.MachineCPU)
			if r.Floor > 0 {
				floor = append(floor, r.Floor.Seconds())
				ratio = append(ratio, r.Wall.Seconds()/r.Floor.Seconds())
				floorRow = append(floorRow, us(r.Floor, r.FloorRecord))
			}
			if r.Rerun > 0 {
				again = append(again, r.Rerun.Seconds())
				againRatio = append(againRatio, r.Rerun.Seconds()/r.Wall.Seconds())
			}
			if r.ParallelFloor > 0 {
				pfloor = append(pfloor, r.ParallelFloor.Seconds())
				pratio = append(pratio, r.Wall.Seconds()/r.ParallelFloor.Seconds())
				f.Streams = r.Streams
			}
			f.AutovacuumsWall += r.AutovacuumsWall
			f.AutovacuumsFloor += r.AutovacuumsFloor
			f.CoordRSS = max(f.CoordRSS, r.CoordRSS)
			for _, w := range r.WorkerRSS {
				f.WorkerRSS = max(f.WorkerRSS, w)
			}
		}
		f.Wall, f.Floor, f.Ratio = spreadOf(wall), spreadOf(floor), spreadOf(ratio)
		f.ParallelFloor, f.ParallelRatio = spreadOf(pfloor), spreadOf(pratio)
		f.Rerun, f.RerunRatio = spreadOf(again), spreadOf(againRatio)
		f.WallPerRow, f.FloorPerRow = spreadOf(wallRow), spreadOf(floorRow)
		f.CoordCPU, f.WorkersCPU, f.MachineCPU = spreadOf(coord), spreadOf(workers), spreadOf(machine)
		f.PerThousand.Coord, f.PerThousand.Workers = spreadOf(kCoord), spreadOf(kWorkers)
		f.PerThousand.Postgres, f.PerThousand.Total, f.PerThousand.WALMiB = spreadOf(kPostgres), spreadOf(kTotal), spreadOf(kWAL)
		f.CoordPeak = spreadOf(peak)
		out = append(out, f)
	}
	return out
}

// Print writes the tables: every figure is the median, then the lowest and
// highest of the repeats.
func Print(w io.Writer, cfg Config, rep Report) {
	fmt.Fprintln(w)
	if cfg.CommandLine != "" {
		fmt.Fprintf(w, "`%s`: %d repeat(s); each cell is the median (lowest–highest) of the repeats.\n\n", cfg.CommandLine, max(cfg.Repeat, 1))
	}
	if len(rep.Latencies) > 0 {
		fmt.Fprintf(w, "| schema | employees | cold: first closing after the services start | warm: the next closings |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|\n")
		for _, l := range rep.Latencies {
			fmt.Fprintf(w, "| %s | %d | %s (%d runs) | %s (%d runs) |\n", l.Schema, l.Employees, l.Cold.seconds(), l.Cold.N,
				l.Warm.seconds(), l.Warm.N)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| schema | employees | chunks | result rows | runs | wall | floor (1 COPY stream) | wall/floor | wall µs/row | floor µs/row | parallel floor (streams) | wall/parallel floor |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range rep.Figures {
		fmt.Fprintf(w, "| %s | %s | %d | %s | %d | %s | %s | %s | %s | %s | %s (%d) | %s |\n", f.Schema, thousands(int64(f.Employees)), f.Chunks,
			thousands(f.Records), f.Runs, f.Wall.seconds(), f.Floor.seconds(), f.Ratio.plain("%.2f"),
			f.WallPerRow.plain("%.1f"), f.FloorPerRow.plain("%.1f"), f.ParallelFloor.seconds(), f.Streams, f.ParallelRatio.plain("%.2f"))
	}
	fmt.Fprintln(w)
	if cfg.Rerun {
		fmt.Fprintf(w, "| schema | employees | first run | forced re-run | re-run/first |\n|---|---:|---:|---:|---:|\n")
		for _, f := range rep.Figures {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.Schema, thousands(int64(f.Employees)), f.Wall.seconds(),
				f.Rerun.seconds(), f.RerunRatio.plain("%.2f"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| schema | employees | coordinator peak RSS | worker peak RSS | CPU s: coordinator | workers | whole machine | autovacuum passes: closings / floors |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range rep.Figures {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d / %d |\n", f.Schema, thousands(int64(f.Employees)), mib(f.CoordRSS),
			mib(f.WorkerRSS), f.CoordCPU.plain("%.2f"), f.WorkersCPU.plain("%.2f"), f.MachineCPU.plain("%.1f"),
			f.AutovacuumsWall, f.AutovacuumsFloor)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| schema | employees | per 1,000 employees: CPU s coordinator | workers | PostgreSQL | the three | WAL MiB |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range rep.Figures {
		k := f.PerThousand
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", f.Schema, thousands(int64(f.Employees)), k.Coord.plain("%.3f"),
			k.Workers.plain("%.3f"), k.Postgres.plain("%.3f"), k.Total.plain("%.3f"), k.WALMiB.plain("%.2f"))
	}
	if cfg.DashboardTabs > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "| schema | employees | dashboard tabs | runs | wall | coordinator peak RSS, MiB | coordinator CPU s |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
		for _, f := range rep.Figures {
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s |\n", f.Schema, thousands(int64(f.Employees)), f.Tabs, f.Runs,
				f.Wall.seconds(), f.CoordPeak.plain("%.1f"), f.CoordCPU.plain("%.2f"))
		}
	}
}

// thousands writes n with commas: 100,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeCSV writes one line per schema and size: the medians, lowest and highest
// (docs/benchmarks.gp plots it).
func writeCSV(path string, fs []Figure) error {
	var b strings.Builder
	b.WriteString("schema,employees,chunks,records,runs,wall_median_s,wall_min_s,wall_max_s,floor_median_s,floor_min_s,floor_max_s," +
		"ratio_median,ratio_min,ratio_max,wall_us_per_row,floor_us_per_row,streams,parallel_floor_median_s,parallel_ratio_median\n")
	for _, f := range fs {
		fmt.Fprintf(&b, "%s,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%.3f,%.3f,%.2f,%.2f,%d,%.4f,%.3f\n", f.Schema, f.Employees, f.Chunks,
			f.Records, f.Runs, f.Wall.Median, f.Wall.Min, f.Wall.Max, f.Floor.Median, f.Floor.Min, f.Floor.Max,
			f.Ratio.Median, f.Ratio.Min, f.Ratio.Max, f.WallPerRow.Median, f.FloorPerRow.Median,
			f.Streams, f.ParallelFloor.Median, f.ParallelRatio.Median)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// variant is a schema change whose cost on the write floor is measured: SQL to
// apply and undo, or indexes of the result tables to drop for the measurement and
// build again after it (dropAll: every index that does not back a constraint).
type variant struct {
	name        string
	apply, undo string
	drop        []string
	dropAll     bool
}

// djangoVariants are what a DBA could drop of the payroll application's indexes
// on the two result tables (testdata/django: the old Celery design's "Índices", plus the index
// Django makes for each foreign key).
var djangoVariants = []variant{
	{name: "without the 4 seed indexes that repeat a UNIQUE constraint or its first column",
		drop: []string{"idx_consolidado_cierre_rut", "idx_consolidado_cierre", "idx_concepto_cons_emp_cod", "idx_concepto_cons_empleado"}},
	{name: "without the 6 seed indexes on booleans, tipo_concepto and fuente_dato",
		drop: []string{"idx_consolidado_ingreso", "idx_consolidado_finiquito", "idx_consolidado_ausentismo",
			"idx_consolidado_estados", "idx_concepto_cons_tipo", "idx_concepto_cons_fuente"}},
	{name: "without every index that backs no constraint (the contract's minimum)", dropAll: true},
}

// indexDefs returns the definitions of the named indexes of the result tables, or
// of all of them that back no constraint.
func indexDefs(ctx context.Context, pool *pgxpool.Pool, v variant) ([]string, []string, error) {
	rows, err := pool.Query(ctx, `
		SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema()
		  AND i.tablename IN ('nomina_empleado_consolidado', 'nomina_concepto_empleado_consolidado')
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
		  AND ($1 OR i.indexname = ANY($2))
		ORDER BY 1`, v.dropAll, v.drop)
	if err != nil {
		return nil, nil, err
	}
	var names, defs []string
	var name, def string
	_, err = pgx.ForEachRow(rows, []any{&name, &def}, func() error {
		names, defs = append(names, name), append(defs, def)
		return nil
	})
	if err == nil && !v.dropAll && len(names) != len(v.drop) {
		err = fmt.Errorf("found %d of the %d indexes %v", len(names), len(v.drop), v.drop)
	}
	return names, defs, err
}

// applyVariant changes the schema and returns the SQL that undoes the change.
func applyVariant(ctx context.Context, pool *pgxpool.Pool, v variant) (string, error) {
	if v.apply != "" {
		_, err := pool.Exec(ctx, v.apply)
		return v.undo, err
	}
	names, defs, err := indexDefs(ctx, pool, v)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if _, err := pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{n}.Sanitize()); err != nil {
			return strings.Join(defs, "; "), err
		}
	}
	return strings.Join(defs, "; "), nil
}

var schemaVariants = []variant{
	{name: "without FK concept → employee",
		apply: "ALTER TABLE nomina_concepto_empleado_consolidado DROP CONSTRAINT nomina_concepto_empleado_consolidado_empleado_fk",
		undo:  "ALTER TABLE nomina_concepto_empleado_consolidado ADD CONSTRAINT nomina_concepto_empleado_consolidado_empleado_fk FOREIGN KEY (empleado_consolidado_id) REFERENCES nomina_empleado_consolidado (id) ON DELETE CASCADE"},
	{name: "without UNIQUE (empleado_consolidado_id, codigo_concepto)",
		apply: "ALTER TABLE nomina_concepto_empleado_consolidado DROP CONSTRAINT nomina_concepto_empleado_consolidado_empleado_codigo_key",
		undo:  "ALTER TABLE nomina_concepto_empleado_consolidado ADD CONSTRAINT nomina_concepto_empleado_consolidado_empleado_codigo_key UNIQUE (empleado_consolidado_id, codigo_concepto)"},
	{name: "with the old Celery design's index on concepts (codigo_concepto)",
		apply: "CREATE INDEX bench_concepto_codigo_idx ON nomina_concepto_empleado_consolidado (codigo_concepto)",
		undo:  "DROP INDEX bench_concepto_codigo_idx"},
	{name: "with the old Celery design's indexes on employees (rut) and (cierre_id, nombre_completo)",
		apply: "CREATE INDEX bench_consolidado_rut_idx ON nomina_empleado_consolidado (rut); CREATE INDEX bench_consolidado_nombre_idx ON nomina_empleado_consolidado (cierre_id, nombre_completo)",
		undo:  "DROP INDEX bench_consolidado_rut_idx; DROP INDEX bench_consolidado_nombre_idx"},
}

func variants(ctx context.Context, pool *pgxpool.Pool, out io.Writer, last Result, list []variant) error {
	var closing int64
	if err := pool.QueryRow(ctx, "SELECT max(cierre_id) FROM nomina_empleado_consolidado").Scan(&closing); err != nil {
		return err
	}
	// Each figure is the best of two, and the contract schema is measured before
	// and after the variants: the floor is noisy on a shared 2-core machine.
	best := func() (time.Duration, int64, error) {
		var b time.Duration
		var rows int64
		for range 2 {
			d, n, _, err := floor(ctx, pool, closing)
			if err != nil {
				return 0, 0, err
			}
			if b == 0 || d < b {
				b = d
			}
			rows = n
		}
		return b, rows, nil
	}
	base, rows, err := best()
	if err != nil {
		return err
	}
	type row struct {
		name string
		d    time.Duration
	}
	var measured []row
	for _, v := range list {
		undo, err := applyVariant(ctx, pool, v)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		d, _, err := best()
		if _, uerr := pool.Exec(ctx, undo); uerr != nil && err == nil {
			err = uerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		measured = append(measured, row{v.name, d})
	}
	if again, _, err := best(); err == nil && again < base {
		base = again
	}
	fmt.Fprintf(out, "\nfloor of the %d-employee closing (%d rows) on the %s schema under variants (best of two):\n\n",
		last.Employees, rows, last.Schema)
	fmt.Fprintf(out, "| schema | floor | µs per row | vs as deployed |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(out, "| %s schema, as deployed | %s | %.1f | — |\n", last.Schema, base.Round(time.Millisecond), us(base, rows))
	for _, m := range measured {
		fmt.Fprintf(out, "| %s | %s | %.1f | %+.0f%% |\n", m.name, m.d.Round(time.Millisecond), us(m.d, rows),
			100*(m.d.Seconds()-base.Seconds())/base.Seconds())
	}
	return nil
}

func us(d time.Duration, rows int64) float64 {
	return float64(d.Microseconds()) / float64(max(rows, 1))
}

// serverReading is the PostgreSQL server's postmaster process (0 when it is not
// a process of this machine) and its current WAL position, read before a closing.
func serverReading(ctx context.Context, pool *pgxpool.Pool) (postmaster int, wal string, err error) {
	var backend int
	err = pool.QueryRow(ctx, "SELECT pg_backend_pid(), pg_current_wal_lsn()::text").Scan(&backend, &wal)
	if err != nil {
		return 0, "", fmt.Errorf("reading the server's WAL position: %w", err)
	}
	return postmasterOf(backend), wal, nil
}
