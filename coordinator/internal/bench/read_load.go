package bench

// Issue 21 (point 3) during a measured closing: callers exporting and
// dry-running another, consolidated closing and junk ProcessChunk calls with
// forged attempt tokens (coordinator/internal/readload, the end-to-end test's
// load), and what the run and the load met (docs/benchmarks.md, "Reads and junk
// calls during a run").

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/coordinator/internal/readload"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/synth"
)

// readLoadEmployees is the size of the closing exported and dry-run during the
// loaded closings, as in the end-to-end test.
const readLoadEmployees = 1000

// readLoadSeed generates that closing: no other closing of the benchmark has it.
const readLoadSeed = 21_000_003

// readClosing is the closing the loaded closings' callers read.
type readClosing struct {
	id           int64
	consolidated bool // once: later runs of it are forced
}

// newReadClosing generates the closing read under load.
func newReadClosing(ctx context.Context, pool *pgxpool.Pool) (*readClosing, error) {
	gen, err := synth.Generate(ctx, pool, synth.Config{Employees: readLoadEmployees, Seed: readLoadSeed})
	if err != nil {
		return nil, fmt.Errorf("generating the closing read under load: %w", err)
	}
	return &readClosing{id: gen.ClosingID}, nil
}

// ensure consolidates the read closing on cluster unless its results are there
// (emptied holds when the result tables were emptied since), forced after its
// first time: an export reads a consolidated closing's results.
func (rc *readClosing) ensure(ctx context.Context, cluster *launch.Cluster, emptied bool, out io.Writer) error {
	if rc.consolidated && !emptied {
		return nil
	}
	run := consolidate
	if rc.consolidated {
		run = rerun
	}
	r, err := run(ctx, cluster.Client, Config{}, rc.id)
	if err != nil {
		return fmt.Errorf("consolidating closing %d, read under load: %w", rc.id, err)
	}
	if r.Estado != string(domain.EstadoConsolidados) {
		return fmt.Errorf("closing %d, read under load, ended %s", rc.id, r.Estado)
	}
	rc.consolidated = true
	fmt.Fprintf(out, "    closing %d (%d employees, read under load) consolidated: %s\n", rc.id, readLoadEmployees, duration(r.Wall))
	return nil
}

// loadOn is the load config of a closing run on cluster: its client, a client of
// each worker (closed by the returned func) and the counts of cfg.
func (rc *readClosing) loadOn(cluster *launch.Cluster, cfg Config) (*readload.Config, func(), error) {
	var addrs []string
	for _, w := range cluster.Workers {
		addrs = append(addrs, w.Addr)
	}
	workers, closeWorkers, err := readload.DialWorkers(addrs)
	if err != nil {
		return nil, nil, err
	}
	return &readload.Config{Client: cluster.Client, Workers: workers, ReadClosing: rc.id,
		Exports: cfg.ReadLoadExports, DryRuns: cfg.ReadLoadDryRuns, Junk: cfg.ReadLoadJunk}, closeWorkers, nil
}

// runLease is what the ledger and the coordinator's log say of a run's lease:
// Epoch 1 is a lease taken once and never lost (every acquisition moves the
// epoch on); RenewFailed counts the renewals that failed (logged "renewing run
// lease", so renewed late if at all), Lost the "run lease lost before the end"
// lines; Busy the chunk attempts a worker turned away busy.
type runLease struct {
	Epoch             int64
	RenewFailed, Lost int
	Busy              int
}

// leaseOf reads runLease of a run from the ledger and from the coordinator's log.
func leaseOf(ctx context.Context, pool *pgxpool.Pool, runID int64, coordinatorLog string) (runLease, error) {
	var l runLease
	if err := pool.QueryRow(ctx, "SELECT lease_epoch FROM consolidation_run WHERE id = $1", runID).Scan(&l.Epoch); err != nil {
		return l, fmt.Errorf("reading the lease of run %d: %w", runID, err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM consolidation_chunk_attempt WHERE run_id = $1 AND outcome = $2",
		runID, domain.OutcomeBusy).Scan(&l.Busy); err != nil {
		return l, fmt.Errorf("counting the busy attempts of run %d: %w", runID, err)
	}
	b, err := os.ReadFile(coordinatorLog)
	if err != nil {
		return l, err
	}
	id := []byte(`"consolidation_id":` + strconv.FormatInt(runID, 10) + `,`)
	for line := range bytes.Lines(b) {
		if !bytes.Contains(line, id) {
			continue
		}
		if bytes.Contains(line, []byte(`"msg":"renewing run lease"`)) {
			l.RenewFailed++
		}
		if bytes.Contains(line, []byte("run lease lost before the end")) {
			l.Lost++
		}
	}
	return l, nil
}

// readCounts sums the load's read answers: answered, shed with and without a
// RetryInfo, unavailable, and any other code.
func readCounts(c *readload.Counts) (ok, shed, shedBare, unavailable, other int) {
	for code, n := range c.Reads {
		switch code {
		case codes.OK:
			ok += n
		case codes.ResourceExhausted:
			shed += n
		case codes.Unavailable:
			unavailable += n
		default:
			other += n
		}
	}
	return ok, shed - c.ShedBare, c.ShedBare, unavailable, other
}

// otherCodes are the read answers of codes readCounts does not name: "0", or
// their count and codes.
func otherCodes(reads map[codes.Code]int) string {
	rest := maps.Clone(reads)
	for _, c := range []codes.Code{codes.OK, codes.ResourceExhausted, codes.Unavailable} {
		delete(rest, c)
	}
	if len(rest) == 0 {
		return "0"
	}
	n := 0
	for _, v := range rest {
		n += v
	}
	return fmt.Sprintf("%d (%s)", n, byCode(rest))
}

// byCode writes answers by code, most first: "ABORTED 990, UNAVAILABLE 10".
func byCode(m map[codes.Code]int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b codes.Code) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return int(a) - int(b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", codeName(k), m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// codeName is a code as gRPC's docs spell it (RESOURCE_EXHAUSTED).
func codeName(c codes.Code) string {
	var b strings.Builder
	prevLower := false
	for _, r := range c.String() {
		if prevLower && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
		prevLower = r >= 'a' && r <= 'z'
	}
	return strings.ToUpper(b.String())
}

// printLoadLine is a closing's line on the load it ran under (or none).
func printLoadLine(out io.Writer, r Result) {
	l := r.Lease
	taken := "taken once"
	if l.Epoch != 1 {
		taken = "taken more than once"
	}
	fmt.Fprintf(out, "    lease: epoch %d (%s), failed renewals %d, lost %d; chunk attempts turned away busy %d\n", l.Epoch,
		taken, l.RenewFailed, l.Lost, l.Busy)
	if r.Load == nil {
		fmt.Fprintf(out, "    no read load (the unloaded closing of its pair)\n")
		return
	}
	ok, shed, bare, unavail, _ := readCounts(r.Load)
	why := ""
	if len(r.Load.Unavailable) > 0 {
		var msgs []string
		for _, m := range slices.Sorted(maps.Keys(r.Load.Unavailable)) {
			msgs = append(msgs, fmt.Sprintf("%q %d", m, r.Load.Unavailable[m]))
		}
		why = " (" + strings.Join(msgs, ", ") + ")"
	}
	fmt.Fprintf(out, "    read load: reads OK %d, RESOURCE_EXHAUSTED with RetryInfo %d, without %d, UNAVAILABLE %d%s, other %s; junk ProcessChunk: %s\n",
		ok, shed, bare, unavail, why, otherCodes(r.Load.Reads), byCode(r.Load.Junk))
}

// printReadLoad is the table of the closings measured with the read load (and
// their unloaded pairs): each closing's wall, end state, lease and the load's
// answers, then each pair's loaded/unloaded ratio.
func printReadLoad(w io.Writer, cfg Config, rs []Result) {
	fmt.Fprintf(w, "\nRead load: %d exporting, %d dry-running, %d junk ProcessChunk calls.\n\n", cfg.ReadLoadExports, cfg.ReadLoadDryRuns, cfg.ReadLoadJunk)
	fmt.Fprintf(w, "| schema | employees | repeat | load | wall | loaded/unloaded | end state | lease epoch | failed renewals | lost | busy attempts | reads OK | shed with RetryInfo | shed without | UNAVAILABLE | other | junk ProcessChunk |\n")
	fmt.Fprintf(w, "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	ratios := map[string][]float64{}
	var order []string
	for i, r := range rs {
		load, ratio, reads, junk := "none", "", "| | | | | |", ""
		if r.Load != nil {
			load = "read load"
			ok, shed, bare, unavail, other := readCounts(r.Load)
			reads = fmt.Sprintf("| %d | %d | %d | %d | %d |", ok, shed, bare, unavail, other)
			junk = byCode(r.Load.Junk)
			if prev, paired := unloadedPair(rs, i); paired {
				x := r.Wall.Seconds() / prev.Wall.Seconds()
				ratio = fmt.Sprintf("%.2f", x)
				k := fmt.Sprintf("%s, %s employees", r.Schema, thousands(int64(r.Employees)))
				if _, seen := ratios[k]; !seen {
					order = append(order, k)
				}
				ratios[k] = append(ratios[k], x)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %d | %d | %d | %d %s %s |\n", r.Schema, thousands(int64(r.Employees)), r.Repeat,
			load, duration(r.Wall), ratio, r.Estado, r.Lease.Epoch, r.Lease.RenewFailed, r.Lease.Lost, r.Lease.Busy, reads, junk)
	}
	for _, k := range order {
		s := spreadOf(ratios[k])
		fmt.Fprintf(w, "\n%s: loaded/unloaded wall %s over %d pair(s) (issue 21 asks for at most 1.5)\n", k, s.plain("%.2f"), s.N)
	}
}

// unloadedPair is the unloaded closing just before rs[i] of the same schema and
// size: its pair under -read-load-paired.
func unloadedPair(rs []Result, i int) (Result, bool) {
	if i == 0 {
		return Result{}, false
	}
	p := rs[i-1]
	return p, p.Load == nil && p.Schema == rs[i].Schema && p.Employees == rs[i].Employees && p.Wall > 0
}
