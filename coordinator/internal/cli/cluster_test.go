package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/synth"
)

// The binaries of the cluster tests, built stamped with testVersion and
// testRevision, as `make build` and the image build stamp theirs.
var binDir string

const (
	testVersion  = "v9.9.9-clitest"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cli-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	const config = "github.com/nominacl/consolidation/pkg/config"
	// faultinject compiles the worker's fault injection (FAULT_* variables), as
	// coordinator/e2e builds it: a run held long enough to be cancelled mid-way.
	build := exec.Command("go", "build", "-tags", "faultinject", "-o", dir,
		"-ldflags", "-X "+config+".Version="+testVersion+" -X "+config+".Revision="+testRevision,
		"github.com/nominacl/consolidation/coordinator/cmd/...", "github.com/nominacl/consolidation/worker/cmd/worker")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	code := pgtest.Main(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// TestBinariesSayTheirVersion: every binary answers -version with its version and
// revision and -h with its usage on stdout, both exiting 0.
func TestBinariesSayTheirVersion(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"coordinator", "worker", "cierrectl", "devcluster", "benchmark"} {
		out, err := exec.Command(filepath.Join(binDir, name), "-version").Output()
		require.NoError(t, err, name)
		require.Regexp(t, `^`+name+` `+testVersion+` \(revision 0123456789ab\) go1\.\d+`, string(out))
		require.Equal(t, 1, strings.Count(string(out), "\n"), "%s: one line", name)

		out, err = exec.Command(filepath.Join(binDir, name), "-h").Output()
		require.NoError(t, err, "%s -h exits 0", name)
		require.Contains(t, string(out), "-version", name)
	}
	// coordinator's unknown command is a usage error, not a JSON log line.
	cmd := exec.Command(filepath.Join(binDir, "coordinator"), "sevre")
	out, err := cmd.CombinedOutput()
	require.Equal(t, 2, cmd.ProcessState.ExitCode(), "%v: %s", err, out)
	require.Contains(t, string(out), "coordinator: unknown command \"sevre\"\n\ncoordinator serves")
}

// TestMainAgainstACluster runs cierrectl's Main against a coordinator and workers:
// the exit codes follow how runs end, refusals are not retried, confirmations
// are refused to a script that does not say -yes.
func TestMainAgainstACluster(t *testing.T) {
	// Not parallel: it swaps stdin and backoff.
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	redis := pgtest.NewRedis(t)
	cluster, err := launch.StartCluster(ctx, launch.ClusterConfig{BinDir: binDir, LogDir: t.TempDir(),
		DatabaseURL: dbURL, RedisURL: redis.URL, Workers: 2, DeathSignal: syscall.SIGKILL,
		CoordinatorEnv: []string{"REDIS_PREFIX=" + redis.Prefix, "RETRY_BASE_DELAY=50ms"}})
	require.NoError(t, err)
	t.Cleanup(cluster.Kill)
	// cierrectl runs a command at the cluster's coordinator.
	cierrectl := func(command string, args ...string) (int, string, string) {
		t.Helper()
		return run(t, append([]string{command, "-addr", cluster.Coordinator.Addr, "-plaintext"}, args...)...)
	}
	pool := pgtest.OpenPool(t, dbURL)
	generate := func(employees int, seed uint64) string {
		s, err := synth.Generate(ctx, pool, synth.Config{Employees: employees, Seed: seed})
		require.NoError(t, err)
		return strconv.FormatInt(s.ClosingID, 10)
	}
	saved := stdin
	t.Cleanup(func() { stdin = saved })
	stdin = fakeInput{strings.NewReader("y\n"), false} // a script's stdin
	waits := countBackoff(t)

	// A clean closing: exit 0, amounts in pesos, the metrics row says the version.
	clean := generate(40, 1)
	code, stdout, stderr := cierrectl("consolidate", "-closing", clean)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, "of closing "+clean+": datos_consolidados\n")
	// stderr is no terminal here: plain progress lines, no bar redrawn with \r.
	require.NotContains(t, stderr, "\r")
	require.Regexp(t, `employees +40 of 40 consolidated, [\d.]+ records, `, stdout)
	require.Regexp(t, `totals +haberes \$ [1-9]\d{0,2}(\.\d{3})*,\d\d, descuentos \$ `, stdout)
	require.Contains(t, stdout, "version_algoritmo          "+testVersion+"\n")

	// status -json: one document, the proto's field names.
	code, stdout, stderr = cierrectl("status", "-json", "-closing", clean)
	require.Equal(t, ExitOK, code, stderr)
	var got struct {
		Consolidation struct {
			Estado  string `json:"estado"`
			Metrics struct {
				Version string `json:"version_algoritmo"`
			} `json:"metrics"`
		} `json:"consolidation"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
	require.Equal(t, "datos_consolidados", got.Consolidation.Estado)
	require.Equal(t, testVersion, got.Consolidation.Metrics.Version)

	// Consolidating it again without -force: the refusal names the flag.
	code, _, stderr = cierrectl("consolidate", "-closing", clean)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "closing "+clean+" is already datos_consolidados: pass -force (and -yes in a script) to consolidate it again\n")

	// -force without -yes on a script's stdin is refused before anything is sent.
	code, _, stderr = cierrectl("consolidate", "-force", "-closing", clean)
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, "stdin is not a terminal to confirm on; pass -yes")
	// With -yes and -json: a line per message, the start first, the end last.
	code, stdout, stderr = cierrectl("consolidate", "-force", "-yes", "-json", "-closing", clean)
	require.Equal(t, ExitOK, code, stderr)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.GreaterOrEqual(t, len(lines), 2, stdout)
	var start struct {
		ClosingID string `json:"closing_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &start))
	require.Equal(t, clean, start.ClosingID)
	var last struct {
		Final struct {
			Estado string `json:"estado"`
		} `json:"final"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.Equal(t, "datos_consolidados", last.Final.Estado)
	for _, l := range lines {
		require.True(t, json.Valid([]byte(l)), l)
	}

	// A poison employee (a total that overflows numeric(12,2)): the run ends
	// consolidacion_parcial, and so does cierrectl, with its own code.
	partial := generate(60, 2)
	_, err = pool.Exec(ctx, `UPDATE nomina_registro_concepto_empleado SET valor = 9999999999.99
		WHERE trim(codigo_concepto) = 'SB' AND empleado_id = (SELECT id FROM nomina_empleado_cierre
		WHERE cierre_id = $1 ORDER BY id OFFSET 30 LIMIT 1)`, partial)
	require.NoError(t, err)
	code, stdout, stderr = cierrectl("consolidate", "-closing", partial)
	require.Equal(t, ExitPartial, code, "%s\n%s", stdout, stderr)
	require.Contains(t, stdout, ": consolidacion_parcial\n")
	require.Contains(t, stderr, "ended consolidacion_parcial: 1 of 60 employees failed\n")
	// The failure names the employee as explain takes it, and the chunk line adds up.
	var poisonID int64
	var poisonRUT string
	require.NoError(t, pool.QueryRow(ctx, `SELECT id, rut FROM nomina_empleado_cierre WHERE cierre_id = $1
		ORDER BY id OFFSET 30 LIMIT 1`, partial).Scan(&poisonID, &poisonRUT))
	require.Regexp(t, `chunks +\d+ succeeded \+ 1 failed \+ \d+ split = \d+ \(`, stdout)
	require.Regexp(t, `failed chunk  \d+ \(employees \d+\.\.\d+, 1 attempt\): `, stdout)
	require.Contains(t, stdout, fmt.Sprintf("  failed        RUT %s (libro row %d, chunk ", poisonRUT, poisonID))
	require.Contains(t, stdout, "employees     59 of 60 consolidated (1 failed), ")
	why := fmt.Sprintf("  why           cierrectl explain -closing %s -rut %s\n", partial, poisonRUT)
	require.Contains(t, stdout, why)
	// explain of that RUT says why: its total does not fit the result column.
	code, _, stderr = cierrectl("explain", "-closing", partial, "-rut", poisonRUT)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, fmt.Sprintf("employee row %d: total_haberes does not fit numeric(12,2)", poisonID))
	// watch of the ended run exits the same way.
	code, _, _ = cierrectl("watch", "-closing", partial)
	require.Equal(t, ExitPartial, code)

	// cancel of a run that has ended is refused before any question, -yes or not.
	for _, args := range [][]string{{"-closing", clean}, {"-yes", "-closing", clean}} {
		code, _, stderr = cierrectl("cancel", args...)
		require.Equal(t, ExitFailed, code, stderr)
		require.Contains(t, stderr, "of closing "+clean+" has already ended datos_consolidados: nothing to cancel\n")
		require.NotContains(t, stderr, "Cancel the latest")
	}

	// list of a closing without runs says so, rather than a header alone.
	code, stdout, stderr = cierrectl("list", "-closing", generate(1, 3))
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, "no consolidation matches\n", stdout)

	// A closing that does not exist: NotFound, at once, never tried again.
	code, _, stderr = cierrectl("watch", "-closing", "999999")
	require.Equal(t, ExitFailed, code)
	require.Contains(t, stderr, "cierrectl watch: NotFound: ")
	require.Zero(t, *waits, "no watch was tried again")
}

// TestCancelledRunIsCountedAsCancelled: a run cancelled mid-way is reported as
// what happened: its chunks succeeded or were cancelled (none failed), no employee
// consolidated (the rows written were removed, and the report says how many), the
// chunk line adds up to the total.
func TestCancelledRunIsCountedAsCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Every chunk waits 1s before its commit: the run is still going when cancelled.
	pool, cierrectl := startCluster(t, "FAULT_HOLD_BEFORE_COMMIT=*=1s")
	s, err := synth.Generate(ctx, pool, synth.Config{Employees: 400, Seed: 5})
	require.NoError(t, err)
	closing := strconv.FormatInt(s.ClosingID, 10)

	code, _, stderr := cierrectl("consolidate", "-no-watch", "-chunk-size", "10", "-closing", closing)
	require.Equal(t, ExitOK, code, stderr)
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM consolidation_chunk c JOIN consolidation_run r ON r.id = c.run_id
			WHERE r.cierre_id = $1 AND c.status = 'succeeded'`, s.ClosingID).Scan(&n)
		return err == nil && n >= 2
	}, time.Minute, 50*time.Millisecond, "no chunk committed")
	code, stdout, stderr := cierrectl("cancel", "-yes", "-closing", closing)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, ": consolidacion_cancelada\n")
	require.NotContains(t, stdout, "failed")
	require.Regexp(t, `chunks +\d+ succeeded \+ \d+ cancelled \(never finished\) = 40 \(`, stdout)
	require.Regexp(t, `employees +0 of 400 consolidated \(\d+ written and removed at the end, \d+ never finished\), 0 records`, stdout)

	// status later says the same, and so does -json, in the proto's fields.
	code, stdout, stderr = cierrectl("status", "-json", "-closing", closing)
	require.Equal(t, ExitOK, code, stderr)
	var got struct {
		Consolidation struct {
			TotalChunks           int  `json:"total_chunks"`
			ChunksSucceeded       int  `json:"chunks_succeeded"`
			ChunksFailed          int  `json:"chunks_failed"`
			ChunksCancelled       int  `json:"chunks_cancelled"`
			EmployeesConsolidated int  `json:"employees_consolidated"`
			EmployeesRemoved      int  `json:"employees_removed"`
			EmployeesCancelled    int  `json:"employees_cancelled"`
			RowsRemoved           bool `json:"rows_removed"`
			Progress              struct {
				Percent float64 `json:"percent"`
			} `json:"progress"`
		} `json:"consolidation"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
	c := got.Consolidation
	require.Zero(t, c.ChunksFailed)
	require.Positive(t, c.ChunksCancelled)
	require.Equal(t, c.TotalChunks, c.ChunksSucceeded+c.ChunksCancelled)
	require.Zero(t, c.EmployeesConsolidated)
	require.True(t, c.RowsRemoved)
	require.Equal(t, 400, c.EmployeesRemoved+c.EmployeesCancelled)
	require.Less(t, c.Progress.Percent, 100.0)
}

// startCluster starts a coordinator and a worker (with workerEnv) in plaintext
// on a database of their own, and returns the database and cierrectl calling
// that coordinator.
func startCluster(t *testing.T, workerEnv ...string) (*pgxpool.Pool, func(string, ...string) (int, string, string)) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	redis := pgtest.NewRedis(t)
	cluster, err := launch.StartCluster(context.Background(), launch.ClusterConfig{BinDir: binDir, LogDir: t.TempDir(),
		DatabaseURL: dbURL, RedisURL: redis.URL, Workers: 1, DeathSignal: syscall.SIGKILL,
		CoordinatorEnv: []string{"REDIS_PREFIX=" + redis.Prefix}, WorkerEnv: workerEnv})
	require.NoError(t, err)
	t.Cleanup(cluster.Kill)
	return pgtest.OpenPool(t, dbURL), func(command string, args ...string) (int, string, string) {
		t.Helper()
		return run(t, append([]string{command, "-addr", cluster.Coordinator.Addr, "-plaintext"}, args...)...)
	}
}
