package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/store"
)

// Every tab watching a run gets its events from the run's one writer, over
// HTTP/1.1 (its connection taken from the server) as over HTTP/2: a tab that
// joins gets the next reading at once; a tab that leaves is dropped and the
// others go on; the run's end brings each tab the run's final details, then the
// final progress event, then the stream's end; a tab that comes after the end
// gets the end at once, from a new writer. A tab that reads nothing holds up
// no other.
func TestRunStreamsShareOneWriter(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			testRunStreams(t, proto == "HTTP/2")
		})
	}
}

type reading struct {
	p     progress.Snapshot
	final *engine.Report
}

func testRunStreams(t *testing.T, h2 bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open, err := grpcx.Security{}.Authorization(nil)
	require.NoError(t, err)
	d := &Dashboard{logger: slog.New(slog.DiscardHandler), cfg: Config{ProxyHeader: DefaultProxyHeader, Authorization: open},
		pages: map[string]*template.Template{}, views: newRunViewCache(time.Second),
		streams: runStreams{runs: map[int64]*runStream{}}, base: ctx}
	for _, name := range []string{"run", "message"} {
		d.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	var ended atomic.Bool
	big := strings.Repeat("<p>"+strings.Repeat("x", 96)+"</p>\n", 16<<20/104)
	d.buildRunView = func(context.Context, int64) (runView, error) {
		v := runView{Run: store.Run{ID: 7, ClosingID: 3, Estado: domain.EstadoConsolidando}, Running: true,
			summary: []byte("<p>en curso</p>")}
		if ended.Load() {
			// Larger than a connection's buffers and a stream's window take:
			// a tab that does not read cannot be written all of it.
			v.Run.Estado, v.Running, v.summary = domain.EstadoConsolidados, false, []byte("<p>terminada</p>"+big)
		}
		return v, nil
	}
	readings := make(chan reading)
	var watches atomic.Int32
	d.watchRun = func(ctx context.Context, runID int64, send func(progress.Snapshot, *engine.Report) error) error {
		if runID != 7 {
			return fmt.Errorf("watching run %d", runID)
		}
		watches.Add(1)
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case r := <-readings:
				if err := send(r.p, r.final); err != nil || r.final != nil {
					return err
				}
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/runs/{id}/events", d.runEvents)
	srv := httptest.NewUnstartedServer(mux)
	var taken atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateHijacked {
			taken.Add(1)
		}
	}
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	defer srv.Close()

	tabs := func() int {
		d.streams.mu.Lock()
		defer d.streams.mu.Unlock()
		if s := d.streams.runs[7]; s != nil {
			return len(s.subs)
		}
		return 0
	}
	type tab struct {
		body io.Closer
		r    *bufio.Reader
	}
	openTab := func() tab {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/runs/7/events", nil)
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		if h2 {
			require.Equal(t, 2, resp.ProtoMajor)
		} else {
			require.True(t, resp.Close, "an HTTP/1.1 stream's body ends with its connection")
		}
		return tab{body: resp.Body, r: bufio.NewReader(resp.Body)}
	}
	progressOf := func(ev sseEvent) progressEvent {
		require.Equal(t, "progress", ev.name)
		var p progressEvent
		require.NoError(t, json.Unmarshal([]byte(ev.data), &p))
		return p
	}
	// untilEnd reads a tab's events to its stream's end: the last two must be
	// the final details and the final progress.
	untilEnd := func(tb tab) {
		var last []sseEvent
		for {
			ev, err := nextEvent(tb.r)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			last = append(last, ev)
		}
		require.GreaterOrEqual(t, len(last), 2)
		details, end := last[len(last)-2], progressOf(last[len(last)-1])
		require.Equal(t, "details", details.name)
		require.Contains(t, details.data, "<p>terminada</p>")
		require.NotContains(t, details.data, "<p>en curso</p>")
		require.True(t, end.Final)
		require.False(t, end.Reload)
		require.Equal(t, 4, end.ChunksDone)
	}
	final := reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 4},
		final: &engine.Report{Run: store.Run{ID: 7, Estado: domain.EstadoConsolidados, FinishedAt: time.Now()}}}

	// The first tab reads nothing after its first event.
	stuck := openTab()
	require.Eventually(t, func() bool { return tabs() == 1 }, 30*time.Second, 5*time.Millisecond)
	d.streams.mu.Lock()
	stuckSub := d.streams.runs[7].subs[0]
	d.streams.mu.Unlock()
	a, b, c := openTab(), openTab(), openTab()
	require.Eventually(t, func() bool { return tabs() == 4 }, 30*time.Second, 5*time.Millisecond)
	readings <- reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 1}}
	for _, tb := range []tab{stuck, a, b, c} {
		ev, err := nextEvent(tb.r)
		require.NoError(t, err)
		require.Equal(t, 1, progressOf(ev).ChunksDone)
	}
	// c's tab closes: the writer drops it at its next writes (HTTP/1.1) or its
	// handler leaves (HTTP/2); a and b go on.
	require.NoError(t, c.body.Close())
	for tabs() != 3 {
		select {
		case readings <- reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 2}}:
		case <-ctx.Done():
			t.Fatal("the closed tab was never dropped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ended.Store(true)
	readings <- final
	untilEnd(a)
	untilEnd(b)
	require.Equal(t, 0, tabs())
	// The tab that does not read held up neither: its write waits still.
	stuckSub.mu.Lock()
	require.False(t, stuckSub.closed, "the tab that reads nothing was written to in full, or dropped before the others were written to")
	stuckSub.mu.Unlock()
	require.NoError(t, stuck.body.Close())

	// A tab opened after the end: a new writer, whose watch ends at once.
	late := openTab()
	require.Eventually(t, func() bool { return tabs() == 1 }, 30*time.Second, 5*time.Millisecond)
	readings <- final
	untilEnd(late)
	require.Equal(t, int32(2), watches.Load())
	if !h2 {
		require.Equal(t, int32(5), taken.Load(), "every HTTP/1.1 stream's connection is taken from the server")
	}
	d.streams.mu.Lock()
	defer d.streams.mu.Unlock()
	require.Empty(t, d.streams.runs)
}

// nextEvent reads one event with data from an event stream, as EventSource
// does (blocks without data, such as "retry:", are skipped).
func nextEvent(r *bufio.Reader) (sseEvent, error) {
	var name string
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && data == nil {
				return sseEvent{}, io.EOF
			}
			return sseEvent{}, io.ErrUnexpectedEOF
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if data != nil {
				return sseEvent{name: name, data: strings.Join(data, "\n")}, nil
			}
			name = ""
		case field == "event":
			name = value
		case field == "data":
			data = append(data, value)
		}
	}
}

// A details event framed around the shared details (framed once for all the
// tabs) is the event framed whole.
func TestSharedFrameIsTheWholeEvent(t *testing.T) {
	t.Parallel()
	for _, before := range []string{"", "acciones\n", "a\r\n", "a\n\n", "sin fin de línea", "a\r"} {
		for _, shared := range []string{"", "mapa", "\nmapa\n", "a\r\nb\rc", "termina en\r", "\n"} {
			for _, after := range []string{"", "después", "\nx", "\n", "y\r\n"} {
				var whole strings.Builder
				require.NoError(t, writeDetails(&whole, []byte(before), []byte(shared), []byte(after)))
				var parts strings.Builder
				event := frameShared([]byte(shared)).event([]byte(before), []byte(after))
				_, err := event.WriteTo(&parts)
				require.NoError(t, err)
				require.Equal(t, whole.String(), parts.String(), "%q + %q + %q", before, shared, after)
			}
		}
	}
}
