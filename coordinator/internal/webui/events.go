package webui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// eventEvery is the least time between two progress events of one stream (the
// final one is sent at once). A skipped reading is followed by the hub's next
// within a second. The hub reads a run at each chunk's end: about 15 times a
// second on a 100,000-employee run here, each an event for every tab before
// (docs/benchmarks.md, "The dashboard").
const eventEvery = 500 * time.Millisecond

// detailsEvery is the least time between two details events of one stream (the
// final one is sent at once): the bar moves with every progress event; the
// chunk map and the totals below it need no more to be read, and each details
// event carries the whole map.
const detailsEvery = 5 * time.Second

// runEvents streams a run's progress as server-sent events. The tab joins the
// run's stream, whose one writer shares the engine's watch hub reading among
// every tab watching the run (as WatchConsolidation streams share it) and
// writes the events (run_streams.go). A tab thus holds one connection, and
// fetches nothing while it watches (docs/benchmarks.md, "The dashboard"). The
// stream ends when the run has ended.
func (d *Dashboard) runEvents(w http.ResponseWriter, r *http.Request) {
	runID, ok := d.pathID(w, r, "id")
	if !ok || !d.allowRead(w, r, methodWatch) {
		return
	}
	// The run as the page that opens this stream has just seen it: its view,
	// shared with the run's other tabs.
	var v runView
	var err error
	offStack(func() {
		v, err = d.views.get(r.Context(), runID, false, func(ctx context.Context) (runView, error) { return d.buildRunView(ctx, runID) })
	})
	if err != nil {
		d.engineError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a buffering proxy would hold the events
	if r.Method == http.MethodHead {
		return
	}
	// Who the caller is does not change while the stream lasts.
	sub := &streamSub{page: d.streamCaller(r), wait: d.writeWait, done: make(chan struct{})}
	// The browser reconnects after 5 s when the stream breaks off before the end.
	const retry = "retry: 5000\n\n"
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 {
		// HTTP/1.x: the connection is taken from the server, which keeps no
		// goroutine or buffer for it; the body ends when the connection closes.
		h.Set("Connection", "close")
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
		conn, rw, err := rc.Hijack()
		if err == nil {
			_ = conn.SetWriteDeadline(time.Now().Add(d.writeWait))
			_, _ = rw.WriteString("HTTP/1.1 200 OK\r\n")
			_ = h.Write(rw)
			_, _ = rw.WriteString("\r\n" + retry)
			if err := rw.Flush(); err != nil {
				_ = conn.Close()
				return
			}
			sub.conn, sub.raw = conn, rawConn(conn)
			if s, first := d.streams.join(runID, v.Run, sub); first {
				go d.writeRun(s, v.Progress.ChunksDone)
			}
			return
		}
		if !errors.Is(err, http.ErrNotSupported) {
			d.logger.WarnContext(r.Context(), "dashboard event stream not opened", "run_id", runID, "error", err.Error())
			return
		}
		h.Del("Connection")
		h.Del("Date")
	}
	// HTTP/2: the handler waits, and writes the events the run's writer hands
	// it.
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, retry); err != nil || rc.Flush() != nil {
		return
	}
	sub.wake = make(chan struct{}, 1)
	s, first := d.streams.join(runID, v.Run, sub)
	if first {
		go d.writeRun(s, v.Progress.ChunksDone)
	}
	for {
		select {
		case <-sub.wake:
			if sub.writeResponse(w, rc) {
				continue
			}
		case <-sub.done: // ended by the writer (the dashboard stopping)
			return
		case <-r.Context().Done():
		}
		// The stream's last events are written, or its tab has gone.
		sub.end()
		sub.leave()
		return
	}
}

// streamCaller is who a stream's caller is, and its form token: the one in the
// cookie its page set, never a new one (a stream's response sets no cookie, and
// a new token would replace the one the caller's other tabs use). Without the
// cookie the stream's details carry no forms.
func (d *Dashboard) streamCaller(r *http.Request) pageData {
	p := pageData{Caller: d.callerOf(r), CSRF: cookieToken(r), LiveMs: d.cfg.LiveEvery.Milliseconds()}
	if p.CSRF == "" {
		p.Caller.CanStart, p.Caller.CanCancel = false, false
	}
	return p
}

// streamActions is a stream's rendering of the run page's "details" template
// for its caller around the shared details: the caller's actions, which change
// only with what the run allows (running: cancel; partial: retry). Rendered
// again only then, not for every tab at every details event (run_streams.go).
type streamActions struct {
	rendered          bool
	running, canRetry bool
	before, after     []byte
}

func (a *streamActions) render(d *Dashboard, page pageData, v runView) error {
	if a.rendered && a.running == v.Running && a.canRetry == v.CanRetry {
		return nil
	}
	var buf bytes.Buffer
	p := d.runPageData(v)
	p.Caller, p.CSRF, p.LiveMs = page.Caller, page.CSRF, page.LiveMs
	before, after, err := d.execute(&buf, "run", "details", p, true)
	if err != nil {
		return err
	}
	*a = streamActions{rendered: true, running: v.Running, canRetry: v.CanRetry, before: before, after: after}
	return nil
}

// offStack runs f on a goroutine of its own and waits for it. An HTTP/2
// stream's handler lasts as long as the run it watches, and a goroutine's stack
// grows with the deepest call it made and shrinks back only when the collector
// finds it three quarters unused: building a view (many frames) on it would
// leave each such tab holding a stack several times the size its waiting needs
// (docs/benchmarks.md, "The dashboard").
func offStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// writeDetails writes a "details" event: the parts of its HTML in order, each
// line framed as the event's data.
func writeDetails(w io.Writer, parts ...[]byte) error {
	if _, err := io.WriteString(w, "event: details\n"); err != nil {
		return err
	}
	data := &eventData{w: w}
	for _, part := range parts {
		if _, err := data.Write(part); err != nil {
			return err
		}
	}
	return data.end()
}

// eventData writes text as a server-sent event's data: "data: " before every
// line, which the browser joins again with line feeds. A carriage return, alone
// or before a line feed, ends a line as a line feed does (the event stream's
// syntax and HTML's both read it so).
type eventData struct {
	w       io.Writer
	midLine bool // a "data: " line is open
	cr      bool // the last byte written was a carriage return
}

var dataPrefix = []byte("data: ")

func (e *eventData) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if e.cr && p[0] == '\n' { // the line feed of a CR LF: its line has ended
			p, e.cr = p[1:], false
			continue
		}
		e.cr = false
		if !e.midLine {
			if _, err := e.w.Write(dataPrefix); err != nil {
				return 0, err
			}
			e.midLine = true
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if _, err := e.w.Write(p); err != nil {
				return 0, err
			}
			break
		}
		if _, err := e.w.Write(p[:i]); err != nil {
			return 0, err
		}
		if _, err := io.WriteString(e.w, "\n"); err != nil {
			return 0, err
		}
		e.midLine, e.cr = false, p[i] == '\r'
		p = p[i+1:]
	}
	return n, nil
}

// end ends the event: its last line, and the empty line after it.
func (e *eventData) end() error {
	end := "\n"
	if e.midLine {
		end = "\n\n"
	}
	_, err := io.WriteString(e.w, end)
	return err
}
