package e2e_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// exportedMetrics is the checked-in list of the metric families the coordinator
// and the worker export after a closing ("name type" per line), which the
// deployment's dashboard and alert rules are checked against (deploy/k8stest).
// UPDATE_EXPORTED_METRICS=1 rewrites it from what the services expose.
var exportedMetrics = filepath.Join("..", "..", "deploy", "k8stest", "testdata", "exported_metrics.txt")

// TestMetricsExported scrapes /metrics of a coordinator and a worker after one
// closing and a refused call: every family the dashboards and alerts use is
// there, the list in exportedMetrics is exactly what is exposed, and the values
// say what happened.
func TestMetricsExported(t *testing.T) {
	t.Parallel()
	coordMetrics, workerMetrics := freeAddr(t), freeAddr(t)
	c := newCluster(t, clusterOptions{workers: 1, coordEnv: []string{"METRICS_ADDR=" + coordMetrics},
		workerEnv: []string{"METRICS_ADDR=" + workerMetrics}})
	_, err := c.client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{ClosingId: 999_999})
	require.Equal(t, codes.NotFound, status.Code(err), "a refusal")
	closing := c.generate(300, 3)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())

	chunks := strconv.Itoa(int(resp.GetTotalChunks()))
	// The run's end is stored before its driver returns and lowers the gauges:
	// scrape the coordinator once they have settled.
	var coord exposition
	require.Eventually(t, func() bool {
		coord = scrape(t, coordMetrics)
		return coord.sample("consolidation_runs_active{") == "0" && coord.sample("consolidation_worker_slots_busy{") == "0"
	}, 10*time.Second, 50*time.Millisecond, "the coordinator's gauges settle after the run")
	worker := scrape(t, workerMetrics)
	families := map[string]bool{}
	for _, s := range []exposition{coord, worker} {
		for f, typ := range s.families {
			families[f+" "+typ] = true
		}
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for f := range families {
			if !yield(f) {
				return
			}
		}
	})
	if os.Getenv("UPDATE_EXPORTED_METRICS") != "" {
		require.NoError(t, os.WriteFile(exportedMetrics, []byte(strings.Join(got, "\n")+"\n"), 0o644))
	}
	want, err := os.ReadFile(exportedMetrics)
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(string(want)), strings.Join(got, "\n"),
		"%s is not what the services export (UPDATE_EXPORTED_METRICS=1 rewrites it)", exportedMetrics)

	t.Run("Coordinator", func(t *testing.T) {
		coord.requireSample(t, `consolidation_runs_finished_total{estado="datos_consolidados"`, "1")
		coord.requireSample(t, `consolidation_chunk_attempts_total{`, chunks) // outcome="committed", the only one
		coord.requireSample(t, `consolidation_run_seconds_count{estado="datos_consolidados"`, "1")
		require.Contains(t, coord.text, `le="7200"`, "run buckets reach RUN_TIMEOUT's default")
		coord.requireSample(t, `consolidation_rpc_requests_total{code="NotFound",method="/consolidation.v1.ConsolidationService/Consolidate"`, "1")
		coord.requireSample(t, `consolidation_rpc_requests_total{code="OK",method="/consolidation.v1.ConsolidationService/Consolidate"`, "1")
		coord.requireSample(t, "consolidation_chunks_pending{", "0")
		coord.requireSample(t, "consolidation_runs_active{", "0")
		coord.requireSample(t, "consolidation_runs_past_deadline{", "0")
		coord.requireSample(t, "consolidation_worker_slots_busy{", "0")
		coord.requireSample(t, "consolidation_worker_slots{", "2") // one worker × WORKER_MAX_IN_FLIGHT 2
		coord.requireSample(t, "consolidation_workers_healthy{", "1")
		require.Contains(t, coord.families, "consolidation_build_info")
		require.Contains(t, coord.families, "go_goroutines")
		require.Contains(t, coord.families, "process_resident_memory_bytes")
	})
	t.Run("Worker", func(t *testing.T) {
		worker.requireSample(t, "consolidation_worker_chunk_seconds_count{", chunks)
		require.Contains(t, worker.text, `le="600"`, "chunk buckets reach the hard per-chunk limit")
		require.Contains(t, worker.text, `le="0.05"`)
		worker.requireSample(t, `consolidation_rpc_requests_total{code="OK",method="/consolidation.v1.WorkerService/ProcessChunk"`, "")
		require.Contains(t, worker.families, "consolidation_build_info")
	})
}

// exposition is one scrape of /metrics: its families by name, with their types.
type exposition struct {
	text     string
	families map[string]string
}

func scrape(t *testing.T, addr string) exposition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	e := exposition{text: string(body), families: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(e.text))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e.families[f[2]] = f[3]
		}
	}
	require.NoError(t, sc.Err())
	return e
}

// sample is the value of the first sample whose line starts with prefix, "" when
// none does.
func (e exposition) sample(prefix string) string {
	for _, line := range strings.Split(e.text, "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}

// requireSample finds a sample line starting with prefix (a name and the start
// of its labels) and, unless value is "", with that value.
func (e exposition) requireSample(t *testing.T, prefix, value string) {
	t.Helper()
	for _, line := range strings.Split(e.text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if value == "" {
			return
		}
		f := strings.Fields(line)
		require.Equal(t, value, f[len(f)-1], line)
		return
	}
	t.Fatalf("no sample %s… in:\n%s", prefix, e.text)
}
