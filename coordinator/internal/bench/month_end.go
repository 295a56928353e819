package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/synth"
)

// MonthEnd is the month-end scenario: many closings of mixed sizes sent at once to
// several coordinator replicas, as payroll providers close hundreds of clients in
// the same few days.
type MonthEnd struct {
	Closings     int // how many closings (default 200)
	MinEmployees int // the smallest closing (default 50)
	MaxEmployees int // the largest closing (default 5,000); sizes are log-uniform between
	Replicas     int // coordinator replicas (default 2)
	// SmallUpTo: closings of at most this many employees count as small (default
	// 999: issue 24's "under 1,000 employees").
	SmallUpTo int
	// Big, if not 0, adds one closing of this many employees, sent first: the
	// others are sent once its Consolidate has returned (its run is going).
	Big int
	// Over, if not 0, spreads the other closings' Consolidate calls over this
	// long (each at a seeded, uniformly random moment), as a month end's calls
	// come in over its hours; 0 sends them all at once, the worst case.
	Over time.Duration
	// SmallOnly sends only the small closings (the same ones, and no big one):
	// what the machine gives them with nothing larger in the way.
	SmallOnly bool
}

// MonthEndResult is what the scenario measured.
type MonthEndResult struct {
	Closings, Employees, Replicas int
	Estados                       map[string]int
	// Wall is from the first Consolidate to the end of the last run.
	Wall time.Duration
	// SlowestSmall is the longest any small closing took from its Consolidate to
	// its end; MedianSmall and P99Small its median and 99th percentile.
	SlowestSmall, MedianSmall, P99Small time.Duration
	SmallClosings                       int
	// BigWall is the big closing's, from its Consolidate to its end (0: none).
	BigWall time.Duration
	// FloorSum is the sum of the floors of the closings (each closing's result
	// rows copied back in one stream, one closing after the other).
	FloorSum time.Duration
	// PeakSessions is the most PostgreSQL sessions the services held at once
	// (sampled every 100 ms), by coordinators and by workers.
	PeakCoordinatorSessions, PeakWorkerSessions int
}

// RunMonthEnd runs the scenario on the service's own schema and prints its table.
func RunMonthEnd(ctx context.Context, cfg Config, me MonthEnd, out io.Writer) (MonthEndResult, error) {
	me.Closings = cmp.Or(me.Closings, 200)
	me.MinEmployees = cmp.Or(me.MinEmployees, 50)
	me.MaxEmployees = cmp.Or(me.MaxEmployees, 5000)
	me.Replicas = cmp.Or(me.Replicas, 2)
	me.SmallUpTo = cmp.Or(me.SmallUpTo, 999)
	res := MonthEndResult{Closings: me.Closings, Replicas: me.Replicas, Estados: map[string]int{}}

	logDir, err := os.MkdirTemp("", "consolidation-bench-")
	if err != nil {
		return res, err
	}
	stores, err := launch.StartStores(ctx, launch.StoresConfig{Database: "bench"})
	if err != nil {
		return res, err
	}
	defer stores.Stop()
	if err := launch.Migrate(ctx, cfg.BinDir, stores.DatabaseURL, filepath.Join(logDir, "migrate.log")); err != nil {
		return res, err
	}
	pool, err := pgxpool.New(ctx, stores.DatabaseURL)
	if err != nil {
		return res, err
	}
	defer pool.Close()

	rng := rand.New(rand.NewPCG(uint64(me.Closings), uint64(me.MaxEmployees)))
	sizes := make([]int, me.Closings)
	closings := make([]int64, me.Closings)
	lo, hi := math.Log(float64(me.MinEmployees)), math.Log(float64(me.MaxEmployees))
	for i := range sizes {
		sizes[i] = int(math.Round(math.Exp(lo + rng.Float64()*(hi-lo))))
	}
	if me.SmallOnly {
		sizes = slices.DeleteFunc(sizes, func(n int) bool { return n > me.SmallUpTo })
		closings, me.Big = closings[:len(sizes)], 0
		res.Closings = len(sizes)
	}
	for _, n := range sizes {
		res.Employees += n
	}
	if me.Big > 0 { // first: sent first
		sizes = slices.Insert(sizes, 0, me.Big)
		closings = append(closings, 0)
		res.Employees += me.Big
	}
	fmt.Fprintf(out, "month end: %d closings of %d to %d employees (small only: %v) sent over %s, %d coordinator replicas, a big closing of %d employees (logs in %s)\n",
		res.Closings, me.MinEmployees, me.MaxEmployees, me.SmallOnly, me.Over, me.Replicas, me.Big, logDir)
	fmt.Fprintf(out, "generating %d employees in %d closings ...\n", res.Employees, res.Closings)
	for i, n := range sizes {
		// settleSources analyzes them all once, after the last.
		gen, err := synth.Generate(ctx, pool, synth.Config{Employees: n, Seed: uint64(i + 1), NoAnalyze: true})
		if err != nil {
			return res, err
		}
		closings[i] = gen.ClosingID
	}
	if err := settleSources(ctx, pool); err != nil {
		return res, err
	}

	env, reasons := serviceEnv(cfg)
	// The benchmark is one caller watching every closing at once, where the
	// application's watchers are many callers: the per-caller cap on Watch streams
	// (docs/security-model.md) would refuse its 101st watch on a replica.
	watches := fmt.Sprintf("MAX_WATCH_STREAMS_PER_CALLER=%d", len(closings))
	coordEnv := append(append([]string{}, env...), watches)
	reasons = append(reasons, watches+" (coordinators): the benchmark watches all the closings from one address")
	fmt.Fprintf(out, "services: their defaults, except\n  %s\n", strings.Join(reasons, "\n  "))
	cluster, err := launch.StartCluster(ctx, launch.ClusterConfig{BinDir: cfg.BinDir, LogDir: logDir,
		DatabaseURL: stores.DatabaseURL, RedisURL: stores.RedisURL, Workers: cfg.Workers, Coordinators: me.Replicas,
		WorkerEnv: env, CoordinatorEnv: coordEnv})
	if err != nil {
		return res, err
	}
	defer cluster.Stop()

	// Sample the services' sessions while the closings run.
	var peakCoord, peakWorker atomic.Int64
	sampling, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var coord, worker int64
			if err := pool.QueryRow(sampling, `
				SELECT count(*) FILTER (WHERE application_name = 'consolidation-coordinator'),
				       count(*) FILTER (WHERE application_name = 'consolidation-worker')
				FROM pg_stat_activity WHERE datname = current_database()`).Scan(&coord, &worker); err == nil {
				peakCoord.Store(max(peakCoord.Load(), coord))
				peakWorker.Store(max(peakWorker.Load(), worker))
			}
			select {
			case <-sampling.Done():
				return
			case <-t.C:
			}
		}
	})

	// When each closing is sent, from the moment the big closing's run is going
	// (all at 0 unless spread).
	sendAt := make([]time.Duration, len(closings))
	if me.Over > 0 {
		for i := range sendAt {
			sendAt[i] = time.Duration(rng.Int64N(int64(me.Over)))
		}
	}
	switch others := len(closings) - min(me.Big, 1); {
	case me.Big > 0 && me.Over > 0:
		fmt.Fprintf(out, "sending the big closing, then the other %d over %s ...\n", others, me.Over)
	case me.Big > 0:
		fmt.Fprintf(out, "sending the big closing, then the other %d at once ...\n", others)
	case me.Over > 0:
		fmt.Fprintf(out, "sending the %d closings over %s ...\n", others, me.Over)
	default:
		fmt.Fprintf(out, "sending the %d closings at once ...\n", others)
	}
	walls := make([]time.Duration, len(closings))
	results := make([]Result, len(closings))
	estados := make([]string, len(closings))
	errs := make([]error, len(closings))
	start := time.Now()
	sending := start
	var wg sync.WaitGroup
	for i, closing := range closings {
		client := cluster.Clients[i%len(cluster.Clients)]
		started := make(chan struct{})
		wg.Go(func() {
			if i > 0 || me.Big == 0 {
				select {
				case <-time.After(time.Until(sending.Add(sendAt[i]))):
				case <-ctx.Done():
					errs[i] = ctx.Err()
					return
				}
			}
			r, err := consolidateThen(ctx, client, cfg, closing, func() { close(started) })
			walls[i], results[i], estados[i], errs[i] = r.Wall, r, r.Estado, err
		})
		if i == 0 && me.Big > 0 {
			<-started // the big closing's run is going before the others are sent
			sending = time.Now()
		}
	}
	wg.Wait()
	res.Wall = time.Since(start)
	fmt.Fprintf(out, "Consolidate calls retried after UNAVAILABLE: %d\n", consolidateRetries.Load())
	stopSampling()
	sampler.Wait()
	res.PeakCoordinatorSessions, res.PeakWorkerSessions = int(peakCoord.Load()), int(peakWorker.Load())

	var small []time.Duration
	var smallSteps latencySteps // where the small closings' time went (latency_steps.go)
	for i := range closings {
		if errs[i] != nil {
			return res, fmt.Errorf("closing %d (%d employees): %w", closings[i], sizes[i], errs[i])
		}
		res.Estados[estados[i]]++
		if i == 0 && me.Big > 0 {
			res.BigWall = walls[i]
			continue
		}
		if sizes[i] <= me.SmallUpTo {
			small = append(small, walls[i])
			if err := smallSteps.add(ctx, pool, results[i]); err != nil {
				return res, err
			}
		}
	}
	smallSteps.print(out, fmt.Sprintf("closings of at most %d employees", me.SmallUpTo))
	if len(small) > 0 {
		slices.Sort(small)
		res.SmallClosings, res.SlowestSmall = len(small), small[len(small)-1]
		res.MedianSmall, res.P99Small = percentile(small, 50), percentile(small, 99)
	}
	if !cfg.SkipFloor {
		fmt.Fprintf(out, "measuring the floor of each of the %d closings ...\n", len(closings))
		for _, closing := range closings {
			d, _, _, err := floor(ctx, pool, closing)
			if err != nil {
				return res, err
			}
			res.FloorSum += d
		}
	}
	if cfg.CommandLine != "" {
		fmt.Fprintf(out, "\n`%s`: one run.\n", cfg.CommandLine)
	}
	PrintMonthEnd(out, res, me)
	return res, nil
}

// percentile is the p-th percentile of sorted xs, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted) + 99) / 100 // ⌈p·n/100⌉
	return sorted[max(i, 1)-1]
}

// PrintMonthEnd writes the scenario's table.
func PrintMonthEnd(w io.Writer, r MonthEndResult, me MonthEnd) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| closings | sent over | employees | big closing | its wall | replicas | end states | total wall | sum of the closings' floors | wall / floors | small closings (≤ %d) | their p50 | their p99 | their slowest | peak sessions: coordinators / workers |\n", me.SmallUpTo)
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var states []string
	for e, n := range r.Estados {
		states = append(states, fmt.Sprintf("%s %d", e, n))
	}
	slices.Sort(states)
	floors, ratio := "—", "—"
	if r.FloorSum > 0 {
		floors, ratio = duration(r.FloorSum), fmt.Sprintf("%.2f", r.Wall.Seconds()/r.FloorSum.Seconds())
	}
	big := "—"
	if me.Big > 0 {
		big = duration(r.BigWall)
	}
	over := "at once"
	if me.Over > 0 {
		over = duration(me.Over)
	}
	fmt.Fprintf(w, "| %d | %s | %d | %d | %s | %d | %v | %s | %s | %s | %d | %s | %s | %s | %d / %d |\n", r.Closings, over, r.Employees,
		me.Big, big, r.Replicas, states, duration(r.Wall), floors, ratio, r.SmallClosings, duration(r.MedianSmall),
		duration(r.P99Small), duration(r.SlowestSmall), r.PeakCoordinatorSessions, r.PeakWorkerSessions)
}
