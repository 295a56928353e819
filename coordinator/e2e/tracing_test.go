package e2e_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/metadata"

	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

const (
	spanConsolidate  = "consolidation.v1.ConsolidationService/Consolidate"
	spanProcessChunk = "consolidation.v1.WorkerService/ProcessChunk"
)

// callerTrace is the W3C trace context a caller of Consolidate sends.
type callerTrace struct{ TraceID, SpanID string }

func newCallerTrace(t *testing.T) callerTrace {
	t.Helper()
	b := make([]byte, 24)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return callerTrace{TraceID: hex.EncodeToString(b[:16]), SpanID: hex.EncodeToString(b[16:])}
}

func (ct callerTrace) context() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "traceparent", fmt.Sprintf("00-%s-%s-01", ct.TraceID, ct.SpanID))
}

// TestOneClosingMakesOneLinkedTrace runs the services exporting to an OTLP
// receiver in this process (the coordinator over gRPC, the workers over HTTP)
// and follows one closing through the spans: the caller's trace reaches the
// Consolidate span; the run, a trace of its own, links to it; each chunk dispatch
// is a child of the run, the ProcessChunk call of the dispatch, the worker's side
// of the call and its SQL below; log lines carry the trace ids. A run resumed by a
// restarted coordinator still links to the call that started it.
func TestOneClosingMakesOneLinkedTrace(t *testing.T) {
	t.Parallel()
	rcv := newOTLPReceiver(t)
	c := newCluster(t, clusterOptions{workers: 2,
		coordEnv: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.GRPCURL, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_SERVICE_NAME=coordinator", "OTEL_BSP_SCHEDULE_DELAY=50"},
		// A chunk takes at least 300ms, so the second run cannot end before the
		// coordinator is stopped.
		workerEnv: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + rcv.HTTPURL, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf",
			"OTEL_BSP_SCHEDULE_DELAY=50", "FAULT_HOLD_BEFORE_COMMIT=*=300ms"}})

	caller := newCallerTrace(t)
	closing := c.generate(300, 5)
	resp, err := c.client.Consolidate(caller.context(), &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	require.NoError(t, err)
	runID, chunks := resp.GetConsolidationId(), int(resp.GetTotalChunks())
	require.Equal(t, 3, chunks)
	final := c.waitEnd(runID, time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())

	tr := waitForRunTrace(t, rcv, runID, chunks)

	// The caller's trace context reached the Consolidate span.
	consolidate := tr.only(t, func(s receivedSpan) bool {
		return s.Name == spanConsolidate && s.Kind == tracev1.Span_SPAN_KIND_SERVER && s.TraceID == caller.TraceID
	})
	require.Equal(t, "coordinator", consolidate.Service)
	require.Equal(t, caller.SpanID, consolidate.ParentID)

	// The run: a root of its own trace, ids only, linked to the Consolidate span.
	run := tr.only(t, func(s receivedSpan) bool {
		return s.Name == "consolidation.run" && s.Attrs["consolidation_id"] == itoa(runID)
	})
	require.Equal(t, "coordinator", run.Service)
	require.Empty(t, run.ParentID)
	require.NotEqual(t, caller.TraceID, run.TraceID)
	require.Equal(t, itoa(closing), run.Attrs["closing_id"])
	require.Equal(t, []spanLink{{TraceID: consolidate.TraceID, SpanID: consolidate.SpanID}}, run.Links)

	// Each committed dispatch is a child of the run; below it the coordinator's
	// ProcessChunk call, the worker's side of it, and the worker's SQL.
	committed := tr.all(func(s receivedSpan) bool {
		return s.Name == "consolidation.chunk" && s.Attrs["consolidation_id"] == itoa(runID) && s.Attrs["outcome"] == string(domain.OutcomeCommitted)
	})
	require.Len(t, committed, chunks)
	sqlSpans := 0
	for _, dispatch := range committed {
		require.Equal(t, run.TraceID, dispatch.TraceID)
		require.Equal(t, run.SpanID, dispatch.ParentID)
		call := tr.only(t, func(s receivedSpan) bool { return s.ParentID == dispatch.SpanID && s.Name == spanProcessChunk })
		require.Equal(t, tracev1.Span_SPAN_KIND_CLIENT, call.Kind)
		require.Equal(t, "coordinator", call.Service)
		served := tr.only(t, func(s receivedSpan) bool { return s.ParentID == call.SpanID })
		require.Equal(t, spanProcessChunk, served.Name)
		require.Equal(t, tracev1.Span_SPAN_KIND_SERVER, served.Kind)
		require.Equal(t, "worker", served.Service)
		require.Equal(t, run.TraceID, served.TraceID)
		sql := tr.all(func(s receivedSpan) bool {
			return s.Service == "worker" && s.Attrs["db.system.name"] == "postgresql" && tr.descends(s, served.SpanID)
		})
		require.NotEmpty(t, sql, "chunk %s: no SQL span under the worker's span", dispatch.Attrs["chunk"])
		sqlSpans += len(sql)
		var copies []string
		for _, s := range sql {
			if strings.HasPrefix(s.Name, "copy_from ") {
				copies = append(copies, s.Name)
			}
		}
		require.ElementsMatch(t, []string{`copy_from "nomina_empleado_consolidado"`, `copy_from "nomina_concepto_empleado_consolidado"`},
			copies, "the result rows are written with COPY, under the chunk's span")
	}
	t.Logf("run %d: %d spans in its trace, %d of them SQL", runID, len(tr.all(func(s receivedSpan) bool { return s.TraceID == run.TraceID })), sqlSpans)

	// No span carries statement arguments or personal data, and health checks make
	// no spans.
	ruts := c.rutsOf(closing)
	for _, s := range rcv.Spans() {
		require.NotContains(t, s.Name, "grpc.health.v1", "health checks are not traced")
		for k, v := range s.Attrs {
			require.NotContains(t, k, "parameters", "span %s carries statement arguments", s.Name)
			for _, r := range ruts {
				require.NotContains(t, v, r, "span %s attribute %s carries a RUT", s.Name, k)
			}
		}
	}

	// Log lines carry the trace ids: the Consolidate call's, and the run's on both
	// sides.
	require.True(t, c.logged("coordinator", "consolidation started", caller.TraceID))
	require.True(t, c.logged("coordinator", "consolidation finished", run.TraceID))
	require.True(t, c.logged("worker-1", "chunk committed", run.TraceID) || c.logged("worker-2", "chunk committed", run.TraceID))

	// A run stopped with its coordinator and resumed by the next one links to the
	// call that started it (its traceparent is stored with the run).
	caller2 := newCallerTrace(t)
	closing2 := c.generate(300, 6)
	resp, err = c.client.Consolidate(caller2.context(), &consolidationv1.ConsolidateRequest{ClosingId: closing2, ChunkSize: 100})
	require.NoError(t, err)
	run2 := resp.GetConsolidationId()
	require.NoError(t, c.coord.Signal(syscall.SIGTERM))
	<-c.coord.Done()
	require.Zero(t, c.chunksSucceeded(run2), "the run ended before its coordinator stopped; nothing was resumed")
	c.start(c.coord)
	c.waitServing(c.coord)
	final = c.waitEnd(run2, time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())

	tr = waitForRunTrace(t, rcv, run2, int(resp.GetTotalChunks()))
	consolidate2 := tr.only(t, func(s receivedSpan) bool { return s.Name == spanConsolidate && s.TraceID == caller2.TraceID })
	runs := tr.all(func(s receivedSpan) bool {
		return s.Name == "consolidation.run" && s.Attrs["consolidation_id"] == itoa(run2)
	})
	require.NotEmpty(t, runs)
	for _, r := range runs { // the stopped coordinator's, if it got to drive it, and the resumed one
		require.Equal(t, []spanLink{{TraceID: consolidate2.TraceID, SpanID: consolidate2.SpanID}}, r.Links)
	}
}

// runTrace is a snapshot of the spans received, indexed by span id.
type runTrace struct {
	spans []receivedSpan
	byID  map[string]receivedSpan
}

// waitForRunTrace waits until the receiver holds the run's span and a committed,
// served dispatch for each of its chunks (the exporters batch), and returns a
// snapshot of every span received.
func waitForRunTrace(t *testing.T, rcv *otlpReceiver, runID int64, chunks int) runTrace {
	t.Helper()
	var tr runTrace
	require.Eventually(t, func() bool {
		tr = runTrace{spans: rcv.Spans(), byID: map[string]receivedSpan{}}
		for _, s := range tr.spans {
			tr.byID[s.SpanID] = s
		}
		var run *receivedSpan
		done := map[string]bool{}
		for _, s := range tr.spans {
			if s.Attrs["consolidation_id"] != itoa(runID) {
				continue
			}
			switch s.Name {
			case "consolidation.run":
				run = &s
			case "consolidation.chunk":
				if s.Attrs["outcome"] == string(domain.OutcomeCommitted) {
					done[s.SpanID] = false
				}
			}
		}
		for _, s := range tr.spans { // the worker's server span, two levels below the dispatch
			if s.Service == "worker" && s.Kind == tracev1.Span_SPAN_KIND_SERVER {
				if _, ok := done[tr.byID[s.ParentID].ParentID]; ok {
					done[tr.byID[s.ParentID].ParentID] = true
				}
			}
		}
		served := 0
		for _, ok := range done {
			if ok {
				served++
			}
		}
		return run != nil && served >= chunks
	}, 30*time.Second, 50*time.Millisecond, "the spans of run %d never arrived", runID)
	return tr
}

func (tr runTrace) all(match func(receivedSpan) bool) []receivedSpan {
	var out []receivedSpan
	for _, s := range tr.spans {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// only returns the one span that matches, failing the test unless there is
// exactly one.
func (tr runTrace) only(t *testing.T, match func(receivedSpan) bool) receivedSpan {
	t.Helper()
	found := tr.all(match)
	require.Len(t, found, 1)
	return found[0]
}

// descends reports whether s is below the span ancestor in its trace.
func (tr runTrace) descends(s receivedSpan, ancestor string) bool {
	for seen := 0; s.ParentID != "" && seen < len(tr.spans); seen++ {
		if s.ParentID == ancestor {
			return true
		}
		var ok bool
		if s, ok = tr.byID[s.ParentID]; !ok {
			return false
		}
	}
	return false
}

// rutsOf lists the RUTs of a closing's libro and novedades, as stored.
func (c *cluster) rutsOf(closing int64) []string {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), `
		SELECT rut FROM nomina_empleado_cierre WHERE cierre_id = $1
		UNION SELECT rut FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1`, closing)
	require.NoError(c.t, err)
	ruts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(c.t, err)
	require.NotEmpty(c.t, ruts)
	return ruts
}

func (c *cluster) chunksSucceeded(runID int64) int {
	c.t.Helper()
	var n int
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM consolidation_chunk WHERE run_id = $1 AND status = $2", runID, domain.ChunkSucceeded).Scan(&n))
	return n
}

// logged reports whether a process's log has a line with msg and trace_id.
func (c *cluster) logged(process, msg, traceID string) bool {
	c.t.Helper()
	f, err := os.Open(filepath.Join(c.logDir, process+".log"))
	require.NoError(c.t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			TraceID string `json:"trace_id"`
			SpanID  string `json:"span_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg && line.TraceID == traceID {
			_, err := strconv.ParseUint(line.SpanID, 16, 64)
			return err == nil
		}
	}
	require.NoError(c.t, sc.Err())
	return false
}
