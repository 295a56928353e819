package e2e_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestLogsSummarizeChunksAndTheRun: the lines an operator greps (README, "Logs")
// are in the coordinator's log: one per chunk, and one summary when the run ends.
func TestLogsSummarizeChunksAndTheRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	closing := c.generate(300, 143)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	run := resp.GetConsolidationId()
	final := c.waitEnd(run, time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())

	// The run's end is visible before its last steps are done: wait for the line.
	var ends []map[string]any
	require.Eventually(t, func() bool {
		ends = c.logLines(c.coord.Name, "consolidation finished", run)
		return len(ends) > 0
	}, 30*time.Second, 50*time.Millisecond, "no summary line")
	require.Len(t, ends, 1, "one summary per run")
	end := ends[0]
	require.Equal(t, "datos_consolidados", end["estado"])
	require.Equal(t, []any{3.0, 3.0, 0.0, 0.0}, []any{end["chunks_ok"], end["chunks"], end["chunks_failed"], end["chunks_split"]})
	require.Equal(t, []any{300.0, 300.0, float64(final.GetRecordsCreated())},
		[]any{end["employees"], end["employees_total"], end["records"]})
	require.Positive(t, end["seconds"])
	require.Positive(t, end["employees_per_sec"])
	require.EqualValues(t, closing, end["closing_id"])

	chunks := c.logLines(c.coord.Name, "chunk ended", run)
	require.Len(t, chunks, 3, "one line per chunk")
	seen, employees, records := map[float64]bool{}, 0.0, 0.0
	for _, l := range chunks {
		require.Equal(t, "succeeded", l["status"])
		require.Contains(t, l, "seconds")
		seen[l["chunk"].(float64)] = true
		employees += l["employees"].(float64)
		records += l["records"].(float64)
	}
	require.Equal(t, map[float64]bool{0: true, 1: true, 2: true}, seen)
	require.Equal(t, 300.0, employees)
	require.Equal(t, float64(final.GetRecordsCreated()), records)
}

// TestListenersLoggedAtStart: every port a process listens on is in its log at
// start, with the address it took: gRPC, the plaintext health port (HEALTH_ADDR,
// on an mTLS cluster), /metrics (METRICS_ADDR) and the profiler (PPROF_ADDR).
func TestListenersLoggedAtStart(t *testing.T) {
	t.Parallel()
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	metrics, err := launch.FreeAddr()
	require.NoError(t, err)
	pprof, err := launch.FreeAddr()
	require.NoError(t, err)
	c := newCluster(t, clusterOptions{workers: 1, tls: dev, coordEnv: []string{"METRICS_ADDR=" + metrics, "PPROF_ADDR=" + pprof}})
	for _, p := range []struct {
		name, msg, addr string
	}{
		{c.coord.Name, "coordinator serving", c.coord.Addr},
		{c.coord.Name, "serving health", c.coord.HealthAddr},
		{c.coord.Name, "serving metrics", metrics},
		{c.coord.Name, "serving profiler", pprof},
		{c.workers[0].Name, "worker serving", c.workers[0].Addr},
		{c.workers[0].Name, "serving health", c.workers[0].HealthAddr},
	} {
		var addrs []any
		for _, l := range c.allLogLines(p.name, p.msg) {
			addrs = append(addrs, l["addr"])
		}
		require.Equal(t, []any{p.addr}, addrs, "%s: %q", p.name, p.msg)
	}
}

// allLogLines are the JSON lines of a process's log with message msg.
func (c *cluster) allLogLines(process, msg string) []map[string]any {
	return c.logLines(process, msg, -1)
}

// logLines are the JSON lines of a process's log with message msg about
// consolidation run (any, when run is -1).
func (c *cluster) logLines(process, msg string, run int64) []map[string]any {
	c.t.Helper()
	f, err := os.Open(filepath.Join(c.logDir, process+".log"))
	require.NoError(c.t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg && (run == -1 || line["consolidation_id"] == float64(run)) {
			out = append(out, line)
		}
	}
	require.NoError(c.t, sc.Err())
	return out
}
