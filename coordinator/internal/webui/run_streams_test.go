package webui

import (
	"bufio"
	"bytes"
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
	err   error // ends the watch with it
}

// streamsFixture is a dashboard's event streams of run 7 served over HTTP/1.1
// or HTTP/2, fed readings by the test through a stand-in for the engine's
// watch.
type streamsFixture struct {
	t        *testing.T
	ctx      context.Context
	h2       bool
	d        *Dashboard
	srv      *httptest.Server
	readings chan reading
	watches  atomic.Int32
	taken    atomic.Int32       // HTTP/1.1 connections taken from the server
	ended    atomic.Bool        // the run's view says it has ended
	stop     context.CancelFunc // the dashboard stops
}

// big is the ended run's shared details: larger than a connection's buffers
// and a stream's window take, so a tab that does not read cannot be written
// all of it.
var big = strings.Repeat("<p>"+strings.Repeat("x", 96)+"</p>\n", 16<<20/104)

func newStreamsFixture(t *testing.T, h2 bool, wait time.Duration) *streamsFixture {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	open, err := grpcx.Security{}.Authorization(nil)
	require.NoError(t, err)
	f := &streamsFixture{t: t, ctx: ctx, h2: h2, readings: make(chan reading)}
	f.d = &Dashboard{logger: slog.New(slog.DiscardHandler), cfg: Config{ProxyHeader: DefaultProxyHeader, Authorization: open},
		pages: map[string]*template.Template{}, views: newRunViewCache(time.Second),
		streams: runStreams{runs: map[int64]*runStream{}}, writeWait: wait}
	f.d.base, f.stop = context.WithCancel(ctx)
	for _, name := range []string{"run", "message"} {
		f.d.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	f.d.buildRunView = func(context.Context, int64) (runView, error) {
		v := runView{Run: store.Run{ID: 7, ClosingID: 3, Estado: domain.EstadoConsolidando}, Running: true,
			summary: []byte("<p>en curso</p>")}
		if f.ended.Load() {
			v.Run.Estado, v.Running, v.summary = domain.EstadoConsolidados, false, []byte("<p>terminada</p>"+big)
		}
		return v, nil
	}
	f.d.watchRun = func(ctx context.Context, runID int64, send func(progress.Snapshot, *engine.Report) error) error {
		if runID != 7 {
			return fmt.Errorf("watching run %d", runID)
		}
		f.watches.Add(1)
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case r := <-f.readings:
				if r.err != nil {
					return r.err
				}
				if err := send(r.p, r.final); err != nil || r.final != nil {
					return err
				}
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/runs/{id}/events", f.d.runEvents)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateHijacked {
			f.taken.Add(1)
		}
	}
	if h2 {
		f.srv.EnableHTTP2 = true
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

// feed hands the run's watch its next reading.
func (f *streamsFixture) feed(r reading) {
	select {
	case f.readings <- r:
	case <-f.ctx.Done():
		f.t.Fatal("the run's writer stopped watching")
	}
}

// final is the run's end.
func (f *streamsFixture) final() reading {
	return reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 4},
		final: &engine.Report{Run: store.Run{ID: 7, Estado: domain.EstadoConsolidados, FinishedAt: time.Now()}}}
}

// tabs is how many tabs watch the run.
func (f *streamsFixture) tabs() int {
	f.d.streams.mu.Lock()
	defer f.d.streams.mu.Unlock()
	if s := f.d.streams.runs[7]; s != nil {
		return len(s.subs)
	}
	return 0
}

// waitTabs waits until n tabs watch the run (a tab joins after its response's
// header is sent).
func (f *streamsFixture) waitTabs(n int) {
	require.Eventually(f.t, func() bool { return f.tabs() == n }, time.Minute, 5*time.Millisecond)
}

type tab struct {
	body io.Closer
	r    *bufio.Reader
}

func (f *streamsFixture) openTab() tab {
	t := f.t
	req, err := http.NewRequestWithContext(f.ctx, "GET", f.srv.URL+"/ui/runs/7/events", nil)
	require.NoError(t, err)
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	if f.h2 {
		require.Equal(t, 2, resp.ProtoMajor)
	} else {
		require.True(t, resp.Close, "an HTTP/1.1 stream's body ends with its connection")
	}
	return tab{body: resp.Body, r: bufio.NewReader(resp.Body)}
}

func (f *streamsFixture) progressOf(ev sseEvent) progressEvent {
	require.Equal(f.t, "progress", ev.name)
	var p progressEvent
	require.NoError(f.t, json.Unmarshal([]byte(ev.data), &p))
	return p
}

// next reads a tab's next event.
func (f *streamsFixture) next(tb tab) sseEvent {
	ev, err := nextEvent(tb.r)
	require.NoError(f.t, err)
	return ev
}

// untilEnd reads a tab's events to its stream's end and returns them.
func (f *streamsFixture) untilEnd(tb tab) []sseEvent {
	var events []sseEvent
	for {
		ev, err := nextEvent(tb.r)
		if err == io.EOF {
			return events
		}
		require.NoError(f.t, err)
		events = append(events, ev)
	}
}

// untilFinal reads a tab's events to its stream's end: the last two must be
// the final details and the final progress.
func (f *streamsFixture) untilFinal(tb tab) {
	last := f.untilEnd(tb)
	require.GreaterOrEqual(f.t, len(last), 2)
	details, end := last[len(last)-2], f.progressOf(last[len(last)-1])
	require.Equal(f.t, "details", details.name)
	require.Contains(f.t, details.data, "<p>terminada</p>")
	require.NotContains(f.t, details.data, "<p>en curso</p>")
	require.True(f.t, end.Final)
	require.False(f.t, end.Reload)
	require.Equal(f.t, 4, end.ChunksDone)
}

func testRunStreams(t *testing.T, h2 bool) {
	f := newStreamsFixture(t, h2, time.Minute)
	// The first tab reads nothing after its first event.
	stuck := f.openTab()
	f.waitTabs(1)
	f.d.streams.mu.Lock()
	stuckSub := f.d.streams.runs[7].subs[0]
	f.d.streams.mu.Unlock()
	a, b, c := f.openTab(), f.openTab(), f.openTab()
	f.waitTabs(4)
	f.feed(reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 1}})
	for _, tb := range []tab{stuck, a, b, c} {
		require.Equal(t, 1, f.progressOf(f.next(tb)).ChunksDone)
	}
	// c's tab closes: the writer drops it at its next writes (HTTP/1.1) or its
	// handler leaves (HTTP/2); the others go on.
	require.NoError(t, c.body.Close())
	for f.tabs() != 3 {
		f.feed(reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 2}})
		time.Sleep(50 * time.Millisecond)
	}
	f.ended.Store(true)
	f.feed(f.final())
	f.untilFinal(a)
	f.untilFinal(b)
	require.Equal(t, 0, f.tabs())
	// The tab that does not read held up neither of them: its write waits
	// still, and its events are whole when it reads them.
	stuckSub.mu.Lock()
	require.False(t, stuckSub.closed, "the tab that reads nothing was written to in full, or dropped, before the others were written to")
	stuckSub.mu.Unlock()
	f.untilFinal(stuck)

	// A tab opened after the end: a new writer, whose watch ends at once.
	late := f.openTab()
	f.waitTabs(1)
	f.feed(f.final())
	f.untilFinal(late)
	require.Equal(t, int32(2), f.watches.Load())
	if !h2 {
		require.Equal(t, int32(5), f.taken.Load(), "every HTTP/1.1 stream's connection is taken from the server")
	}
	f.d.streams.mu.Lock()
	defer f.d.streams.mu.Unlock()
	require.Empty(t, f.d.streams.runs)
}

// A stream outlives a pause longer than its write deadline; a run that can no
// longer be watched ends its streams with a "gone" event; the dashboard's
// stopping ends them without one.
func TestRunStreamsEnd(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			const wait = 200 * time.Millisecond
			f := newStreamsFixture(t, proto == "HTTP/2", wait)
			tb := f.openTab()
			f.waitTabs(1)
			f.feed(reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 1}})
			require.Equal(t, 1, f.progressOf(f.next(tb)).ChunksDone)
			time.Sleep(5 * wait)
			f.feed(reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 2}})
			require.Equal(t, 2, f.progressOf(f.next(tb)).ChunksDone, "the stream broke off after a pause")
			f.feed(reading{err: &engine.Error{Kind: engine.KindUnavailable, Msg: "coordinator is shutting down; watch again"}})
			events := f.untilEnd(tb)
			require.Len(t, events, 1)
			require.Equal(t, "gone", events[0].name)

			tb = f.openTab()
			f.waitTabs(1)
			f.feed(reading{p: progress.Snapshot{TotalChunks: 4, ChunksDone: 3}})
			require.Equal(t, 3, f.progressOf(f.next(tb)).ChunksDone)
			f.stop()
			require.Empty(t, f.untilEnd(tb), "a stopping dashboard's streams end with no event")
		})
	}
}

// A tab on a slow link is not a stalled one: it gets a details event that
// takes it longer than the write deadline to read, as long as it keeps reading.
func TestRunStreamsSlowTab(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			// A writer blocked on a full socket is woken only once a third of
			// what the socket holds has gone (Linux): over loopback, where it
			// holds up to 4 MiB, more than 1 MiB, about 0.4 s at this pace. A
			// 1 s deadline left too little room on a loaded machine.
			f := newStreamsFixture(t, proto == "HTTP/2", 3*time.Second)
			tb := f.openTab()
			f.waitTabs(1)
			f.ended.Store(true)
			f.feed(f.final())
			// 64 KiB every 20 ms: the 16 MiB final takes about 5 s to read,
			// longer than the deadline, each piece written to it far less.
			tb.r = bufio.NewReader(&slowReader{r: tb.r})
			f.untilFinal(tb)
		})
	}
}

// slowReader reads r at about 64 KiB every 20 ms.
type slowReader struct {
	r    io.Reader
	read int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.read >= 64<<10 {
		time.Sleep(20 * time.Millisecond)
		s.read = 0
	}
	n, err := s.r.Read(p)
	s.read += n
	return n, err
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

// tcpTab is a tab's stream over a TCP connection, as the server takes it, and
// the tab's end of it.
func tcpTab(t *testing.T) (*streamSub, *bufio.Reader) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	conn, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sub := &streamSub{conn: conn, raw: rawConn(conn), wait: time.Minute, done: make(chan struct{}), leave: func() {}}
	require.NotNil(t, sub.raw)
	return sub, bufio.NewReader(client)
}

func progressFrame(t *testing.T, done int) []byte {
	ev, err := frameProgress(progressEvent{ChunksDone: done})
	require.NoError(t, err)
	return ev
}

// bigDetails is a details event of 16 MiB, more than a socket's buffers take.
func bigDetails(t *testing.T) []byte {
	var details bytes.Buffer
	require.NoError(t, writeDetails(&details, []byte(big)))
	return details.Bytes()
}

// A tab that keeps up is written its events by the run's writer as it offers
// them, with no goroutine of the tab's; an event larger than the tab's socket
// takes at once is written in part so, the rest by the tab's goroutine, and
// arrives whole, before the events offered after it; a last event so large
// arrives whole too, and ends the stream.
func TestOfferWritesWhatTheSocketTakes(t *testing.T) {
	t.Parallel()
	t.Run("Running", func(t *testing.T) {
		t.Parallel()
		sub, r := tcpTab(t)
		sub.offer(progressFrame(t, 1), nil, nil)
		sub.mu.Lock()
		require.False(t, sub.writing, "a small event to a tab that keeps up was left to a goroutine")
		sub.mu.Unlock()
		ev, err := nextEvent(r)
		require.NoError(t, err)
		require.Contains(t, ev.data, `"chunks_done":1`)

		sub.offer(nil, net.Buffers{bigDetails(t)}, nil)
		sub.mu.Lock()
		require.True(t, sub.writing, "the socket took 16 MiB at once: the test proves nothing")
		sub.mu.Unlock()
		sub.offer(progressFrame(t, 2), nil, nil)
		sub.offer(progressFrame(t, 3), nil, nil)
		sub.offer(nil, nil, net.Buffers{progressFrame(t, 4)})

		ev, err = nextEvent(r) // read only now: the socket was full when the events after it were offered
		require.NoError(t, err)
		require.Equal(t, "details", ev.name)
		require.Equal(t, strings.TrimSuffix(big, "\n"), ev.data, "the details event was not written whole")
		var last int
		for {
			ev, err := nextEvent(r)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			var p progressEvent
			require.NoError(t, json.Unmarshal([]byte(ev.data), &p))
			require.Greater(t, p.ChunksDone, last, "the events came out of order")
			last = p.ChunksDone
		}
		require.Equal(t, 4, last, "the stream ended before its last event")
	})

	t.Run("Last", func(t *testing.T) {
		t.Parallel()
		sub, r := tcpTab(t)
		sub.offer(nil, nil, net.Buffers{bigDetails(t), progressFrame(t, 4)})
		sub.mu.Lock()
		require.True(t, sub.writing, "the socket took 16 MiB at once: the test proves nothing")
		sub.mu.Unlock()
		ev, err := nextEvent(r)
		require.NoError(t, err)
		require.Equal(t, "details", ev.name)
		require.Equal(t, strings.TrimSuffix(big, "\n"), ev.data, "the last details were not written whole")
		ev, err = nextEvent(r)
		require.NoError(t, err)
		require.Equal(t, 4, (&streamsFixture{t: t}).progressOf(ev).ChunksDone)
		_, err = nextEvent(r)
		require.Equal(t, io.EOF, err, "the stream did not end after its last event")
	})
}
