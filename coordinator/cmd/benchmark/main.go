// Command benchmark is `make bench`: closings of growing size consolidated through
// a coordinator and workers, each measured against the single-stream COPY floor.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nominacl/consolidation/coordinator/internal/bench"
	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

func main() {
	fs := flag.NewFlagSet("benchmark", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "benchmark is make bench: closings consolidated through a coordinator and workers, each measured\nagainst the single-stream COPY floor.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	sizes := fs.String("sizes", "133,2000,20000,100000", "comma list of closing sizes (employees)")
	million := fs.Bool("million", false, "also run a 1,000,000-employee closing")
	workers := fs.Int("workers", 2, "worker processes")
	inFlight := fs.Int("in-flight", 0, "chunks in flight per worker (WORKER_MAX_IN_FLIGHT of the coordinator and the workers); 0: the services' defaults")
	var pgSettings stringList
	fs.Var(&pgSettings, "pg-setting", "a setting name=value for the throwaway PostgreSQL, after its own (repeatable)")
	databaseURL := fs.String("database-url", "", "measure on this existing database instead of a throwaway PostgreSQL")
	policy := fs.String("policy", "", "chunk policy: seed or cost_weighted (default: the service's)")
	chunkSize := fs.Int("chunk-size", 0, "override the chunk size")
	noFloor := fs.Bool("no-floor", false, "skip the floor measurement")
	csv := fs.String("csv", "", "also write the results as CSV to this file")
	variants := fs.Bool("variants", false, "also measure the floor of the last closing under schema variants")
	schemas := fs.String("schema", "own,django", "comma list of database schemas: own (the service's migrations), django (the payroll application's tables as Django creates them, with the old Celery design's indexes)")
	monthEnd := fs.Bool("month-end", false, "run the month-end scenario instead: many closings of mixed sizes sent at once to several coordinator replicas")
	meClosings := fs.Int("month-end-closings", 200, "month end: how many closings")
	meMax := fs.Int("month-end-max", 5000, "month end: employees of the largest closing (the smallest has 50; sizes log-uniform)")
	meReplicas := fs.Int("month-end-replicas", 2, "month end: coordinator replicas")
	meBig := fs.Int("month-end-big", 0, "month end: also one closing of this many employees, sent first (issue 24: 1,000,000); 0: none")
	meOver := fs.Duration("month-end-over", 0, "month end: send the closings (after the big one) at random moments over this long, as a month end's calls come in; 0: all at once, the worst case")
	meSmallOnly := fs.Bool("month-end-small-only", false, "month end: send only the small closings (the same ones; no big one): what the machine gives them with nothing larger in the way")
	meSmall := fs.Int("month-end-small", 999, "month end: closings of at most this many employees count as small (their p50, p99 and slowest are reported)")
	closing := fs.Int64("closing", 0, "measure this existing closing instead, through the running coordinator at -coordinator: -repeat forced runs, each watched to its end, with mean, median, stdev, min and max (every run rewrites the closing's results: use a copy)")
	coordinator := fs.String("coordinator", "localhost:50051", "with -closing: the coordinator's gRPC address (TLS from TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE; plaintext without them)")
	repeat := fs.Int("repeat", 1, "measure every figure this many times and report median, lowest and highest (wall and floor alternate)")
	warmRuns := fs.Int("warm-runs", 3, "133-employee closings after the cold one on each freshly started cluster (the warm latency)")
	rerunFlag := fs.Bool("rerun", false, "consolidate each measured closing again, forced, right after its first run, and report the re-run's wall against the first's")
	rerunChanged := fs.Bool("rerun-changed", false, "with -rerun: before each re-run, add 1 to every libro concept value of the closing, so the re-run replaces every employee's rows (its worst case)")
	smallFirst := fs.Int("small-first", 2, "133-employee closings consolidated on the same services before each measured closing, after the result tables were emptied and analyzed (month end's order on a new database); 0: none")
	statements := fs.Bool("statements", false, "load pg_stat_statements and print, for each size, the statements of its closing and of its floor")
	profile := fs.String("profile", "", "write CPU profiles of the coordinator and workers, taken during the largest size's first run, to this directory")
	profileSeconds := fs.Int("profile-seconds", 10, "length of each CPU profile (-profile)")
	tabs := fs.Int("dashboard-tabs", 0, "serve the coordinator's dashboard and have this many simulated browser tabs watch every run")
	tabsBrowser := fs.String("dashboard-browser", "", "with -dashboard-tabs: open the tabs in this real browser instead of simulating them: chromium (headless, started afresh for each run with tabs; its CPU is reported apart, and it competes with the run for the machine's cores)")
	tabsTLS := fs.Bool("dashboard-tls", false, "with -dashboard-browser: run the services on mTLS with a throwaway CA, so the dashboard is served over TLS and the browser's tabs share one HTTP/2 connection to one host, as one person's tabs do (without it: plain HTTP/1.1, a host per tab)")
	tabsIdle := fs.Bool("dashboard-browser-idle", false, "with -dashboard-browser: run the browser under SCHED_IDLE (chrt --idle 0), below even nice 19, so it gets a core only when the run leaves one")
	tabsOpened := fs.Bool("dashboard-opened", false, "with -dashboard-paired: before each measured closing, in both groups, one simulated tab opens the page and stream of the last small latency closing's run on the fresh services, so both coordinators have served the dashboard once")
	tabsPaired := fs.Bool("dashboard-paired", false, "with -dashboard-tabs: the measured closings alternate without and with the tabs (the first without), each on services started afresh; -repeat 6 gives 3 pairs")
	readLoad := fs.Bool("read-load", false, "during every measured closing, callers keep exporting and dry-running (validate_only) another, consolidated 1,000-employee closing and junk ProcessChunk calls with forged attempt tokens hit the workers (issue 21, point 3); each closing's line says its end state, its lease and the answers by code")
	readExports := fs.Int("read-load-exports", 200, "with -read-load: callers exporting the other closing")
	readDryRuns := fs.Int("read-load-dry-runs", 200, "with -read-load: callers dry-running (validate_only) the other closing")
	readJunk := fs.Int("read-load-junk", 1000, "with -read-load: ProcessChunk calls with forged attempt tokens, sent as the run starts")
	readPaired := fs.Bool("read-load-paired", false, "with -read-load: the measured closings alternate without and with the load (the first without), each on services started afresh, and each pair's loaded/unloaded wall is reported; -repeat 6 gives 3 pairs")
	if code, done := config.ParseArgs(fs, os.Args[1:], os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "benchmark: unexpected argument %q (see benchmark -h)\n", fs.Arg(0))
		os.Exit(2)
	}

	cfg := bench.Config{Workers: *workers, InFlight: *inFlight, Policy: domain.Policy(*policy), ChunkSize: *chunkSize,
		SkipFloor: *noFloor, CSV: *csv, Variants: *variants, Repeat: *repeat, WarmRuns: *warmRuns, SmallFirst: *smallFirst, Rerun: *rerunFlag, RerunChanged: *rerunChanged, Statements: *statements,
		ProfileDir: *profile, ProfileSeconds: *profileSeconds, CommandLine: commandLine(),
		PostgresSettings: pgSettings, DatabaseURL: *databaseURL, DashboardTabs: *tabs,
		DashboardPaired: *tabsPaired, DashboardOpened: *tabsOpened, DashboardBrowser: *tabsBrowser, DashboardBrowserIdle: *tabsIdle, DashboardTLS: *tabsTLS, ReadLoad: *readLoad || *readPaired, ReadLoadExports: *readExports, ReadLoadDryRuns: *readDryRuns,
		ReadLoadJunk: *readJunk, ReadLoadPaired: *readPaired}
	var err error
	if cfg.Schemas, err = bench.ParseSchemas(*schemas); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark: -schema:", err)
		os.Exit(2)
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "benchmark: -sizes: %q is not a size\n", s)
			os.Exit(2)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if *million {
		cfg.Sizes = append(cfg.Sizes, 1_000_000)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
	cfg.BinDir = filepath.Dir(self)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *tabsBrowser != "" && *tabsBrowser != bench.BrowserChromium {
		fmt.Fprintf(os.Stderr, "benchmark: -dashboard-browser: %q is not a browser this benchmark drives (%s)\n", *tabsBrowser, bench.BrowserChromium)
		os.Exit(2)
	}
	if *tabsOpened && (!*tabsPaired || *tabsTLS) {
		fmt.Fprintln(os.Stderr, "benchmark: -dashboard-opened goes with -dashboard-paired, not with -dashboard-tls (its simulated tab speaks plain HTTP/1.1)")
		os.Exit(2)
	}
	if (*tabsBrowser != "" || *tabsIdle || *tabsPaired) && *tabs <= 0 {
		fmt.Fprintln(os.Stderr, "benchmark: -dashboard-browser, -dashboard-browser-idle and -dashboard-paired go with -dashboard-tabs")
		os.Exit(2)
	}
	if *tabsTLS && *tabsBrowser == "" {
		fmt.Fprintln(os.Stderr, "benchmark: -dashboard-tls goes with -dashboard-browser (the simulated tabs speak plain HTTP/1.1)")
		os.Exit(2)
	}
	if *tabsIdle && *tabsBrowser == "" {
		fmt.Fprintln(os.Stderr, "benchmark: -dashboard-browser-idle goes with -dashboard-browser")
		os.Exit(2)
	}
	if *readPaired && *tabsPaired {
		fmt.Fprintln(os.Stderr, "benchmark: -read-load-paired and -dashboard-paired each pair the closings: give one")
		os.Exit(2)
	}
	if *readPaired && *repeat%2 != 0 {
		fmt.Fprintln(os.Stderr, "benchmark: -read-load-paired measures pairs (unloaded, then loaded): give an even -repeat (6 for 3 pairs)")
		os.Exit(2)
	}
	if (*readLoad || *readPaired) && (*closing != 0 || *monthEnd) {
		fmt.Fprintln(os.Stderr, "benchmark: -read-load loads the closings of -sizes, not -closing or -month-end")
		os.Exit(2)
	}
	if *readExports < 0 || *readDryRuns < 0 || *readJunk < 0 {
		fmt.Fprintln(os.Stderr, "benchmark: -read-load-exports, -read-load-dry-runs and -read-load-junk must be at least 0")
		os.Exit(2)
	}
	if *repeat < 1 || *warmRuns < 1 {
		fmt.Fprintln(os.Stderr, "benchmark: -repeat and -warm-runs must be at least 1")
		os.Exit(2)
	}
	if *closing != 0 {
		ex := bench.ExistingConfig{Coordinator: *coordinator, Closing: *closing, Repeat: *repeat,
			TLS: grpcx.TLSFiles{Cert: os.Getenv(grpcx.EnvTLSCert), Key: os.Getenv(grpcx.EnvTLSKey), CA: os.Getenv(grpcx.EnvTLSCA)}}
		if err := bench.RunExisting(ctx, ex, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "benchmark:", err)
			os.Exit(1)
		}
		return
	}
	if *monthEnd {
		me := bench.MonthEnd{Closings: *meClosings, MaxEmployees: *meMax, Replicas: *meReplicas, Big: *meBig, SmallUpTo: *meSmall, Over: *meOver, SmallOnly: *meSmallOnly}
		if _, err := bench.RunMonthEnd(ctx, cfg, me, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "benchmark:", err)
			os.Exit(1)
		}
		return
	}
	if _, err := bench.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

// commandLine is how this program was run, as a shell would take it back.
func commandLine() string {
	args := []string{"bin/" + filepath.Base(os.Args[0])}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " '\"$\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q is not name=value", v)
	}
	*l = append(*l, v)
	return nil
}
