// Package bench is `make bench`: it consolidates synthetic closings of growing size
// through a real coordinator and workers on a throwaway PostgreSQL and Redis, and
// measures each against the floor: the time to COPY the same result rows back into
// the same tables in one stream.
package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/coordinator/internal/readload"
	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/synth"
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
	// during the closing, during its forced re-run (-rerun) and during its floor
	// (the last repeat).
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
	// DashboardOpened, with DashboardPaired, has one simulated tab open a small
	// closing's ended run (the last latency closing's) page and stream on the
	// fresh services before each measured closing, in both groups alike
	// (openedBefore): the pair then compares
	// coordinators that have both served the dashboard once, as one that runs
	// all month has, and what differs is the tabs watching the run.
	DashboardOpened bool
	// DashboardBrowser, when BrowserChromium, opens the tabs in a real headless
	// Chromium started for each run with tabs (dashboard_browser.go) instead of
	// simulating them; DashboardBrowserIdle runs that browser under SCHED_IDLE.
	DashboardBrowser     string
	DashboardBrowserIdle bool
	// DashboardTLS runs the services on mTLS with a throwaway CA, so the
	// dashboard is served over TLS and the browser speaks HTTP/2 to it: its
	// tabs share one connection to one host, as one person's tabs do.
	DashboardTLS  bool
	dashboardAddr string         // UI_ADDR, set by runSchema with DashboardTabs
	devTLS        *launch.DevTLS // the cluster's certificates, with DashboardTLS
	browser       *browser       // the run's browser, with DashboardBrowser
	// PostgresSettings ("name=value") are given to the throwaway PostgreSQL after
	// its own (settings.go), so they override them.
	PostgresSettings []string
	// DatabaseURL, when set, is an existing database to measure on instead of a
	// throwaway server (the Django schema's database is created beside it).
	DatabaseURL string
	// ReadLoad puts issue 21's load (point 3) on every measured closing
	// (read_load.go): ReadLoadExports callers exporting and ReadLoadDryRuns
	// dry-running (validate_only) a consolidated 1,000-employee closing until the
	// run ends, each waiting the RetryInfo's delay when shed, and ReadLoadJunk
	// ProcessChunk calls with forged attempt tokens sent to the workers as the run
	// starts. Each closing's line says its end state, its lease (from the ledger
	// and the coordinator's log) and the load's answers by code.
	ReadLoad                                       bool
	ReadLoadExports, ReadLoadDryRuns, ReadLoadJunk int
	// ReadLoadPaired alternates the measured closings without and with the read
	// load (the first without), each on a coordinator and workers started
	// afresh, and reports each pair's loaded/unloaded wall.
	ReadLoadPaired bool
	readLoad       *readload.Config // the load of the closing watchRun runs, set by runSchema
	// Rerun consolidates each measured closing a second time, forced, right after
	// its first run, and reports that wall against the first's.
	Rerun bool
	// RerunChanged, with Rerun, adds 1 to every libro concept value of the
	// closing before each re-run (outside its measurement), so every employee's
	// result changes and the re-run replaces every row: its worst case.
	RerunChanged bool
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
		scheme := "http"
		if cfg.DashboardTLS {
			if cfg.devTLS, err = newDashboardTLS(filepath.Join(logDir, "tls-"+string(sc))); err != nil {
				return lat, nil, err
			}
			scheme = "https"
		}
		fmt.Fprintf(out, "  %d dashboard tabs watch every run on %s://%s/ui/\n", cfg.DashboardTabs, scheme, addr)
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
	var openedRun int64 // the last latency closing's run: its page is opened first (Config.DashboardOpened)
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
			openedRun = r.RunID
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
	var read *readClosing
	if cfg.ReadLoad {
		if read, err = newReadClosing(ctx, pool); err != nil {
			return lat, nil, err
		}
	}
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
			if cfg.DashboardPaired || cfg.ReadLoadPaired {
				if cfg.DashboardPaired && rep%2 == 0 {
					runCfg.DashboardTabs = 0
				}
				cluster.Stop()
				cluster = nil
				if cluster, err = startCluster(ctx, cfg, stores, sc, dbURL, logDir, 1000*(si+1)+rep); err != nil {
					return lat, results, err
				}
				services, coord = cluster.Processes(), cluster.Coordinator
				if cfg.DashboardOpened {
					if err := openedBefore(ctx, cfg.dashboardAddr, openedRun); err != nil {
						return lat, results, err
					}
				}
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
			closeLoad := func() {}
			if read != nil {
				// Before every measured closing, loaded or not, when its results may be
				// gone (emptied, or on fresh services): the pair's closings start alike.
				if err := read.ensure(ctx, cluster, cfg.SmallFirst > 0 || cfg.ReadLoadPaired, out); err != nil {
					return lat, results, err
				}
				if !cfg.ReadLoadPaired || rep%2 == 1 {
					if runCfg.readLoad, closeLoad, err = read.loadOn(cluster, cfg); err != nil {
						return lat, results, err
					}
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
			var browserCPU float64
			if runCfg.DashboardTabs > 0 && cfg.DashboardBrowser == BrowserChromium {
				// Started before the run and not counted in it: the tabs open once
				// the run has an id, as a person opens its page.
				if runCfg.browser, err = startBrowser(ctx, cfg.DashboardBrowserIdle, cfg.DashboardTLS); err != nil {
					return lat, results, err
				}
				browserCPU = runCfg.browser.cpu()
			}
			stopSampling := sampleResident(coord.Pid(), 10*time.Millisecond)
			r, err := consolidate(ctx, cluster.Client, runCfg, gen.ClosingID)
			anonPeak, filePeak := stopSampling()
			closeLoad()
			if runCfg.browser != nil {
				r.BrowserCPU = runCfg.browser.cpu() - browserCPU
				runCfg.browser.close()
			}
			if err != nil {
				return lat, results, err
			}
			r.Load1 = loadAverage()
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
			if cfg.ReadLoad {
				if r.Lease, err = leaseOf(ctx, pool, r.RunID, coord.LogPath); err != nil {
					return lat, results, err
				}
			}
			r.CoordRSS = peakRSS(coord.Pid())
			r.CoordAnonPeak, r.CoordFilePeak = anonPeak, filePeak
			r.CoordAnon, r.CoordFile = residentSplit(coord.Pid())
			for _, s := range cluster.Workers {
				r.WorkerRSS = append(r.WorkerRSS, peakRSS(s.Pid()))
			}
			if profiles != nil {
				if err := profiles(); err != nil {
					fmt.Fprintf(out, "  CPU profiles: %v\n", err)
				}
			}
			if cfg.Statements && last {
				ss, err := topStatements(ctx, pool, 20)
				if err != nil {
					return lat, results, err
				}
				printStatements(out, fmt.Sprintf("%s, %d employees, the closing", sc, n), ss)
				if err := resetStatements(ctx, pool); err != nil {
					return lat, results, err
				}
			}
			if cfg.Rerun {
				if cfg.RerunChanged {
					if err := changeLibro(ctx, pool, gen.ClosingID); err != nil {
						return lat, results, err
					}
				}
				_, walAgain, err := serverReading(ctx, pool)
				if err != nil {
					return lat, results, err
				}
				pgAgain := serverCPU(postmaster)
				again, err := rerun(ctx, cluster.Client, cfg, gen.ClosingID)
				if err != nil {
					return lat, results, err
				}
				pgAgain = serverCPU(postmaster) - pgAgain
				var walBytes int64
				if err := pool.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint", walAgain).Scan(&walBytes); err != nil {
					return lat, results, err
				}
				// CPU seconds and WAL depend far less on the machine's load than the walls.
				fmt.Fprintf(out, "  %s, %d employees, repeat %d: forced re-run %s; PostgreSQL CPU s %.2f (first run %.2f); WAL %.1f MiB (first run %.1f)\n",
					sc, n, rep+1, duration(again.Wall), pgAgain, r.PostgresCPU, float64(walBytes)/(1<<20), float64(r.WALBytes)/(1<<20))
				if again.Estado != r.Estado {
					return lat, results, fmt.Errorf("the forced re-run of closing %d ended %s, the first run %s", gen.ClosingID, again.Estado, r.Estado)
				}
				r.Rerun = again.Wall
				if cfg.Statements && last {
					ss, err := topStatements(ctx, pool, 20)
					if err != nil {
						return lat, results, err
					}
					printStatements(out, fmt.Sprintf("%s, %d employees, the forced re-run", sc, n), ss)
					if err := resetStatements(ctx, pool); err != nil {
						return lat, results, err
					}
				}
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
			if steps, err := readSteps(ctx, pool, r); err == nil {
				fmt.Fprintf(out, "    %s\n", stepsLine(steps))
			} else {
				fmt.Fprintf(out, "    %v\n", err)
			}
			if cfg.DashboardTabs > 0 {
				fmt.Fprintf(out, "    %d dashboard tabs: coordinator peak RSS %s (peaks read every 10 ms: anon %s, file %s; at the end: anon %s, file %s); load average %.2f",
					r.Tabs, mib(r.CoordRSS), mib(r.CoordAnonPeak), mib(r.CoordFilePeak), mib(r.CoordAnon), mib(r.CoordFile), r.Load1)
				if r.TabsSeen.Tabs > 0 {
					s := r.TabsSeen
					fmt.Fprintf(out, "; chromium CPU s %.2f; %d/%d tabs at 100 %% (the last %.1f s after the end), progress values each received during the run: min %d, median %d; pages over %s",
						r.BrowserCPU, s.AtEnd, s.Tabs, s.EndLag.Seconds(), s.LiveMin, s.LiveMedian, s.Protocols)
				}
				fmt.Fprintln(out)
			}
			if cfg.ReadLoad {
				printLoadLine(out, r)
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
		if cfg.devTLS != nil {
			// The browser stands in for the authenticating proxy (dashboardViewer).
			coordEnv = append(coordEnv, "UI_TRUSTED_PROXIES=127.0.0.1,::1")
		}
	}
	return launch.StartCluster(ctx, launch.ClusterConfig{BinDir: cfg.BinDir, LogDir: clusterLogs,
		DatabaseURL: dbURL, RedisURL: stores.RedisURL, Workers: cfg.Workers, WorkerMetrics: true, Pprof: cfg.ProfileDir != "",
		WorkerEnv: env, CoordinatorEnv: coordEnv, TLS: cfg.devTLS})
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
