package bench

// What a benchmark measured, summarized over its repeats and printed as the
// tables of docs/benchmarks.md (and its CSV).

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/readload"
)

// Result is one measurement: one closing consolidated, then its floor.
type Result struct {
	Schema    Schema
	Employees int
	Repeat    int // 1, 2, ...
	Chunks    int
	Records   int64
	Wall      time.Duration
	CoordRSS  int64
	// CoordAnon and CoordFile split the coordinator's resident memory at the
	// run's end (residentSplit).
	CoordAnon, CoordFile int64
	// CoordAnonPeak and CoordFilePeak are the highest of each part, read every
	// 10 ms during the run (sampleResident): a peak between two readings is
	// missed, and CoordRSS's window starts a little earlier (resetPeakRSS).
	CoordAnonPeak, CoordFilePeak int64
	WorkerRSS                    []int64
	Floor                        time.Duration
	FloorRecord                  int64
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
	// Tabs is how many dashboard tabs watched the closing; with a real browser
	// (Config.DashboardBrowser), TabsSeen is what they showed and BrowserCPU the
	// CPU seconds of the browser's processes during the run.
	Tabs       int
	TabsSeen   TabsSeen
	BrowserCPU float64
	// Load1 is the machine's load average over the minute before the run ended.
	Load1 float64
	// Load is what the read load (Config.ReadLoad) was answered during the
	// closing, nil without it; Lease what became of the run's lease (with
	// Config.ReadLoad).
	Load  *readload.Counts
	Lease runLease
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
	// CoordAnonPeak and CoordFilePeak are its parts' peaks (Result), in MiB.
	CoordAnonPeak, CoordFilePeak Spread
	// Tabs is the dashboard tabs that watched these closings; Loaded says the
	// read load ran during them (Config.ReadLoad).
	Tabs   int
	Loaded bool
	// BrowserCPU is the browser's CPU seconds of each repeat (real-browser
	// tabs only); Load1 the machine's load average at each repeat's end.
	BrowserCPU, Load1 Spread
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

// Figures summarizes the results of each schema and size over its repeats, in
// the order first measured.
func Figures(rs []Result) []Figure {
	type key struct {
		sc     Schema
		n      int
		tabs   int
		loaded bool
	}
	var order []key
	groups := map[key][]Result{}
	for _, r := range rs {
		k := key{r.Schema, r.Employees, r.Tabs, r.Load != nil}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []Figure
	for _, k := range order {
		g := groups[k]
		f := Figure{Schema: k.sc, Employees: k.n, Chunks: g[0].Chunks, Records: g[0].Records, Runs: len(g), Tabs: k.tabs, Loaded: k.loaded}
		var wall, floor, ratio, pfloor, pratio, again, againRatio, wallRow, floorRow, coord, workers, machine, peak, anonPeak, filePeak []float64
		var kCoord, kWorkers, kPostgres, kTotal, kWAL, browserCPU, load1 []float64
		for _, r := range g {
			load1 = append(load1, r.Load1)
			if r.TabsSeen.Tabs > 0 {
				browserCPU = append(browserCPU, r.BrowserCPU)
			}
			peak = append(peak, float64(r.CoordRSS)/(1<<20))
			anonPeak, filePeak = append(anonPeak, float64(r.CoordAnonPeak)/(1<<20)), append(filePeak, float64(r.CoordFilePeak)/(1<<20))
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
		f.CoordAnonPeak, f.CoordFilePeak = spreadOf(anonPeak), spreadOf(filePeak)
		f.BrowserCPU, f.Load1 = spreadOf(browserCPU), spreadOf(load1)
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
		fmt.Fprintf(w, "| %s | %s | %d | %s | %d | %s | %s | %s | %s | %s | %s (%d) | %s |\n", f.label(), thousands(int64(f.Employees)), f.Chunks,
			thousands(f.Records), f.Runs, f.Wall.seconds(), f.Floor.seconds(), f.Ratio.plain("%.2f"),
			f.WallPerRow.plain("%.1f"), f.FloorPerRow.plain("%.1f"), f.ParallelFloor.seconds(), f.Streams, f.ParallelRatio.plain("%.2f"))
	}
	fmt.Fprintln(w)
	if cfg.Rerun {
		fmt.Fprintf(w, "| schema | employees | first run | forced re-run | re-run/first |\n|---|---:|---:|---:|---:|\n")
		for _, f := range rep.Figures {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.label(), thousands(int64(f.Employees)), f.Wall.seconds(),
				f.Rerun.seconds(), f.RerunRatio.plain("%.2f"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| schema | employees | coordinator peak RSS | worker peak RSS | CPU s: coordinator | workers | whole machine | autovacuum passes: closings / floors |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range rep.Figures {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d / %d |\n", f.label(), thousands(int64(f.Employees)), mib(f.CoordRSS),
			mib(f.WorkerRSS), f.CoordCPU.plain("%.2f"), f.WorkersCPU.plain("%.2f"), f.MachineCPU.plain("%.1f"),
			f.AutovacuumsWall, f.AutovacuumsFloor)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| schema | employees | per 1,000 employees: CPU s coordinator | workers | PostgreSQL | the three | WAL MiB |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range rep.Figures {
		k := f.PerThousand
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", f.label(), thousands(int64(f.Employees)), k.Coord.plain("%.3f"),
			k.Workers.plain("%.3f"), k.Postgres.plain("%.3f"), k.Total.plain("%.3f"), k.WALMiB.plain("%.2f"))
	}
	if cfg.DashboardTabs > 0 {
		fmt.Fprintln(w)
		tabs := "simulated (HTTP clients)"
		if cfg.DashboardBrowser != "" {
			tabs = cfg.DashboardBrowser
			if cfg.DashboardBrowserIdle {
				tabs += " under SCHED_IDLE"
			}
			if cfg.DashboardTLS {
				tabs += ", every tab on one host over TLS and HTTP/2"
			} else {
				tabs += ", a host a tab over plain HTTP/1.1"
			}
		}
		fmt.Fprintf(w, "Dashboard tabs: %s.\n\n", tabs)
		fmt.Fprintf(w, "| schema | employees | dashboard tabs | runs | wall | coordinator peak RSS, MiB | its anon peak | its file peak | coordinator CPU s | browser CPU s | load average |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, f := range rep.Figures {
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", f.label(), thousands(int64(f.Employees)), f.Tabs, f.Runs,
				f.Wall.seconds(), f.CoordPeak.plain("%.1f"), f.CoordAnonPeak.plain("%.1f"), f.CoordFilePeak.plain("%.1f"),
				f.CoordCPU.plain("%.2f"), f.BrowserCPU.plain("%.2f"), f.Load1.plain("%.1f"))
		}
	}
	if cfg.ReadLoad {
		printReadLoad(w, cfg, rep.Results)
	}
}

// label names a figure's rows in the tables: its schema, and "read load"
// when the load ran during its closings (Config.ReadLoad).
func (f Figure) label() string {
	if f.Loaded {
		return string(f.Schema) + ", read load"
	}
	return string(f.Schema)
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

func us(d time.Duration, rows int64) float64 {
	return float64(d.Microseconds()) / float64(max(rows, 1))
}
