package webui

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/store"
)

// writeWait bounds each piece (writePiece) of a write of events to one tab
// (Dashboard.writeWait, this unless a test says otherwise): a tab that takes
// none within it (a laptop closed without its connection being closed) is
// dropped, and its browser reconnects when it wakes. What a tab's socket does
// not take at once is written by a goroutine of the tab's own, so a slow tab
// holds up nobody else's events.
const writeWait = 10 * time.Second

// rstAvoidanceDelay is how long a taken connection is kept after its last
// event before it is closed, as net/http does: closing a connection with bytes
// from the client still unread would reset it and could lose the last event.
const rstAvoidanceDelay = 500 * time.Millisecond

// errNoTabs ends a run's writer's watch: every tab has left.
var errNoTabs = errors.New("no tab watches the run")

// goneEvent ends a stream whose run can no longer be watched (the coordinator
// stopping, the run unreadable): the page then stops listening.
var goneEvent = []byte("event: gone\ndata: {}\n\n")

// runStreams are the event streams of the watched runs: for each, one writer
// goroutine that takes the engine's readings, frames each event once and hands
// it to every tab watching the run. A tab keeps no goroutine of its own while
// it waits: over HTTP/1.1 its connection is taken from the server once the
// stream's header is written (the server's goroutine, its background reader
// and its buffers end there), the run's writer writes its events as far as its
// socket takes them at once, and a goroutine of the tab's writes the rest, only
// while there is some; over HTTP/2, where a connection cannot be taken, the
// stream's handler waits and writes them (docs/benchmarks.md, "The dashboard").
type runStreams struct {
	mu   sync.Mutex
	runs map[int64]*runStream
}

// runStream is one watched run's tabs. A runStream whose run has ended, or that
// its writer found without tabs, is taken out of runStreams in the same lock:
// a tab that comes after it starts a new one.
type runStream struct {
	runID  int64
	opened store.Run // the run as the first tab's page saw it, for the events' estado while it runs
	subs   []*streamSub
}

// streamSub is one tab watching a run.
type streamSub struct {
	page    pageData        // who the tab's caller is and its form token
	fresh   bool            // joined since the last event (guarded by runStreams.mu): the next reading goes to it at once
	actions streamActions   // its caller's actions, rendered by the run's writer only
	conn    net.Conn        // HTTP/1.x: its taken connection; nil over HTTP/2
	raw     syscall.RawConn // conn's socket when it has one (not TLS): written first without waiting (writeNow)
	wait    time.Duration   // writeWait
	wake    chan struct{}   // HTTP/2: capacity 1, its handler has events to write
	leave   func()          // takes it out of its run's stream: set when it joins

	mu      sync.Mutex
	next    waiting       // the events not written yet
	writing bool          // HTTP/1.x: next is being written (by the run's writer, or a goroutine of the tab's)
	closed  bool          // its stream has ended: nothing more is written to it
	done    chan struct{} // closed with closed
}

// waiting are a tab's events not written yet, newest only: a tab that is
// behind skips to the newest progress and details, never a queue.
type waiting struct {
	partial  net.Buffers // what a write from the run's writer left of its events: written first, whole
	progress []byte
	details  net.Buffers
	last     net.Buffers // the stream's last events: written, then the stream ends
}

func (w waiting) empty() bool {
	return w.partial == nil && w.progress == nil && w.details == nil && w.last == nil
}

// parts are the events to write, in order.
func (w waiting) parts() net.Buffers {
	if w.last != nil && w.partial == nil {
		return w.last
	}
	parts := make(net.Buffers, 0, len(w.partial)+1+len(w.details)+len(w.last))
	parts = append(parts, w.partial...)
	if w.last != nil {
		return append(parts, w.last...)
	}
	if w.progress != nil {
		parts = append(parts, w.progress)
	}
	return append(parts, w.details...)
}

// offer hands the tab its next events, and writes them to a taken connection
// (HTTP/1.x) or wakes the handler (HTTP/2). A tab that turns out to have gone
// leaves its run's stream. Only the run's writer offers.
func (s *streamSub) offer(progress []byte, details, last net.Buffers) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	switch {
	case last != nil:
		s.next = waiting{partial: s.next.partial, last: last}
	case s.next.last == nil:
		if progress != nil {
			s.next.progress = progress
		}
		if details != nil {
			s.next.details = details
		}
	}
	start := s.conn != nil && !s.writing
	s.writing = s.writing || start
	s.mu.Unlock()
	switch {
	case start:
		if !s.writeNow() {
			go s.writeConn()
		}
	case s.conn == nil:
		select {
		case s.wake <- struct{}{}:
		default: // woken already
		}
	}
}

// writeNow writes the tab's waiting events from the run's writer, as far as
// its socket takes them without waiting, and says whether it is done with them
// (all written, or the tab gone): a tab that keeps up (nearly every tab, nearly
// always) then costs no goroutine per event, whose stack the runtime would keep
// for the next (docs/benchmarks.md, "What a watched run's extra megabyte
// was"). What is left goes to a goroutine of the tab's own (writeConn), with
// the deadlines a slow tab gets; an event begun is finished before any other.
func (s *streamSub) writeNow() (done bool) {
	if s.raw == nil {
		return false
	}
	w, ok := s.take()
	if !ok {
		return true
	}
	// A write that does not wait needs no deadline; one left by an earlier
	// write (writeConn's, or the header's) would fail it once passed.
	err := s.conn.SetWriteDeadline(time.Time{})
	parts := w.parts()
	var rest net.Buffers
	if err == nil {
		rest, err = writeNow(s.raw, parts)
	}
	switch {
	case err != nil:
		s.end() // the tab has gone (its browser reconnects if it has not)
		s.leave()
		return true
	case len(rest) > 0:
		s.mu.Lock()
		defer s.mu.Unlock()
		// Nothing was offered since: the run's writer is here.
		switch {
		case size(rest) == size(parts):
			s.next = w // none of it written: newer events may still replace it
		case w.last != nil:
			s.next = waiting{partial: rest, last: net.Buffers{}} // then the stream ends
		default:
			s.next = waiting{partial: rest}
		}
		return false
	case w.last != nil:
		s.finish()
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = false
	return true
}

// size is how many bytes b holds.
func size(b net.Buffers) (n int) {
	for _, p := range b {
		n += len(p)
	}
	return n
}

// take returns the events waiting, if any and the stream has not ended; with
// none, the HTTP/1.x writing stops (the next offer writes again).
func (s *streamSub) take() (waiting, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.next
	s.next = waiting{}
	if s.closed || w.empty() {
		s.writing = false
		return waiting{}, false
	}
	return w, true
}

// writeConn writes a taken connection's waiting events until none is left.
func (s *streamSub) writeConn() {
	for {
		w, ok := s.take()
		if !ok {
			return
		}
		if err := writeWithin(w.parts(), s.wait, s.conn.SetWriteDeadline, s.conn.Write); err != nil {
			s.end() // the tab has gone (its browser reconnects if it has not)
			s.leave()
			return
		}
		if w.last != nil {
			s.finish()
			return
		}
	}
}

// writeResponse writes an HTTP/2 stream's waiting events, from its handler.
// It says whether the stream goes on.
func (s *streamSub) writeResponse(w http.ResponseWriter, rc *http.ResponseController) bool {
	next, ok := s.take()
	if !ok {
		return true
	}
	// A write deadline over HTTP/2 resets the stream when it passes, written
	// to or not: cleared after each write.
	deadline := func(t time.Time) error {
		if err := rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	defer func() { _ = deadline(time.Time{}) }()
	if err := writeWithin(next.parts(), s.wait, deadline, w.Write); err != nil {
		return false
	}
	return rc.Flush() == nil && next.last == nil
}

// writePiece is the most written to a tab under one deadline: a tab must take
// this much every writeWait, not a whole details event (about 150 KB on a
// 100,000-employee run) — a slow link is not a stalled one.
const writePiece = 16 << 10

// writeWithin writes parts in pieces of writePiece at most, each within wait.
func writeWithin(parts net.Buffers, wait time.Duration, setDeadline func(time.Time) error, write func([]byte) (int, error)) error {
	for _, p := range parts {
		for len(p) > 0 {
			n := min(len(p), writePiece)
			if err := setDeadline(time.Now().Add(wait)); err != nil {
				return err
			}
			if _, err := write(p[:n]); err != nil {
				return err
			}
			p = p[n:]
		}
	}
	return nil
}

// end ends the tab's stream at once: its taken connection is closed, its
// handler (HTTP/2) returns.
func (s *streamSub) end() { s.close(false) }

// finish ends the tab's stream after its last event: a taken connection is
// closed once the client has had time to stop sending.
func (s *streamSub) finish() { s.close(true) }

func (s *streamSub) close(graceful bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	// Closing may write (TLS's closing alert): not under mu, which the run's
	// writer takes to hand the tab its events.
	if s.conn == nil {
		return
	}
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok && graceful && cw.CloseWrite() == nil {
		time.AfterFunc(rstAvoidanceDelay, func() { _ = s.conn.Close() })
		return
	}
	if t, ok := s.conn.(*tls.Conn); ok && !graceful {
		_ = t.NetConn().Close() // a tab gone or stalled would not take the alert
		return
	}
	_ = s.conn.Close()
}

// join adds a tab to its run's stream; first says the tab is the stream's
// first: the caller then starts its writer.
func (rs *runStreams) join(runID int64, opened store.Run, sub *streamSub) (s *runStream, first bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if s = rs.runs[runID]; s == nil {
		s, first = &runStream{runID: runID, opened: opened}, true
		rs.runs[runID] = s
	}
	sub.fresh = true
	sub.leave = func() { rs.leave(s, sub) }
	s.subs = append(s.subs, sub)
	return s, first
}

// leave takes a tab out of its run's stream (its writer takes the stream out
// of runStreams at its next reading if it was the last).
func (rs *runStreams) leave(s *runStream, sub *streamSub) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s.subs = slices.DeleteFunc(s.subs, func(x *streamSub) bool { return x == sub })
}

// targets are the tabs a reading goes to: all of them when an event is due
// (and with the final one, the stream leaves runStreams), else those that joined
// since the last event. all is how many tabs watch.
func (rs *runStreams) targets(s *runStream, due, final bool) (to []*streamSub, all int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	all = len(s.subs)
	for _, sub := range s.subs {
		if due || sub.fresh {
			sub.fresh = false
			to = append(to, sub)
		}
	}
	if final {
		rs.drop(s)
	}
	return to, all
}

// endIfIdle takes the stream out of runStreams if no tab watches it, and says
// whether it did; a tab may have joined since the writer found none.
func (rs *runStreams) endIfIdle(s *runStream) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(s.subs) > 0 {
		return false
	}
	rs.drop(s)
	return true
}

// end takes the stream out of runStreams and returns its tabs.
func (rs *runStreams) end(s *runStream) []*streamSub {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	subs := s.subs
	rs.drop(s)
	return subs
}

// drop, with mu held, takes s out of runStreams: no tab joins it after.
func (rs *runStreams) drop(s *runStream) {
	if rs.runs[s.runID] == s {
		delete(rs.runs, s.runID)
	}
	s.subs = nil
}

// writeRun is a watched run's writer: it takes the engine's readings of the run
// and hands them to its tabs until the run ends, every tab has left, or the
// dashboard stops. "progress" events carry the bar's figures (the last one with
// final set), at most one every eventEvery but the final one; "details" events
// carry the page's details below the bar as HTML (each tab's caller's actions,
// then the run's shared details, framed once for all the tabs), at most every
// detailsEvery while chunks end, and once more, before the final progress
// event, with the run's end.
func (d *Dashboard) writeRun(s *runStream, detailsDone int) {
	ctx, cancel := context.WithCancel(d.base)
	defer cancel()
	build := func(ctx context.Context) (runView, error) { return d.buildRunView(ctx, s.runID) }
	// The view read for this event's details; nil when there are none to send
	// (the tabs keep the details they have: a running run's come again in
	// detailsEvery, and an ended run's pages reload).
	view := func(ended bool) *runView {
		v, err := d.views.get(ctx, s.runID, ended, build)
		if err != nil {
			if ctx.Err() == nil {
				d.logger.WarnContext(ctx, "dashboard details not sent", "run_id", s.runID, "error", err.Error())
			}
			return nil
		}
		return &v
	}
	var sent time.Time
	detailsAt := time.Now()
	send := func(p progress.Snapshot, final *engine.Report) error {
		now := time.Now()
		due := final != nil || now.Sub(sent) >= eventEvery
		to, all := d.streams.targets(s, due, final != nil)
		if all == 0 {
			return errNoTabs
		}
		if len(to) == 0 {
			return nil
		}
		if due {
			sent = now
		}
		run := s.opened
		var v *runView
		if final != nil {
			run = final.Run
			v = view(true)
		} else if due && p.ChunksDone != detailsDone && now.Sub(detailsAt) >= detailsEvery {
			detailsDone, detailsAt = p.ChunksDone, now
			v = view(false)
		}
		ev := newProgressEvent(p, final, run)
		progressEv, err := frameProgress(ev)
		var reloadEv []byte // the final progress for a tab whose details could not be built
		if err == nil && final != nil {
			ev.Reload = true
			reloadEv, err = frameProgress(ev)
		}
		if err != nil {
			for _, sub := range to { // taken out of runStreams already if final: ended here
				sub.end()
				sub.leave()
			}
			return err
		}
		var shared sharedFrame
		if v != nil {
			shared = frameShared(v.summary)
		}
		for _, sub := range to {
			var details net.Buffers
			if v != nil {
				if err := sub.actions.render(d, sub.page, *v); err != nil {
					d.logger.WarnContext(ctx, "dashboard details not sent", "run_id", s.runID, "error", err.Error())
				} else {
					details = shared.event(sub.actions.before, sub.actions.after)
				}
			}
			switch {
			case final == nil:
				sub.offer(progressEv, details, nil)
			case details != nil:
				sub.offer(nil, nil, append(details, progressEv))
			default:
				sub.offer(nil, nil, net.Buffers{reloadEv})
			}
		}
		if final == nil && d.streams.endIfIdle(s) {
			return errNoTabs // the last tabs left since the last reading
		}
		return nil
	}
	for {
		err := d.watchRun(ctx, s.runID, send)
		if errors.Is(err, errNoTabs) && !d.streams.endIfIdle(s) {
			continue // a tab joined after the last left: watch again for it
		}
		for _, sub := range d.streams.end(s) {
			if err != nil && !errors.Is(err, errNoTabs) && ctx.Err() == nil {
				sub.offer(nil, nil, net.Buffers{goneEvent})
			} else {
				sub.end()
			}
		}
		return
	}
}

// frameProgress frames ev as a "progress" event.
func frameProgress(ev progressEvent) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "event: progress\ndata: %s\n\n", data), nil
}

// sharedFrame is a view's shared details framed as event data once, for all
// the tabs of its run: each tab's details event is its caller's actions framed
// around these bytes, not a copy of them.
type sharedFrame struct {
	html, data []byte
	end        eventData // the framing's state after them
}

func frameShared(html []byte) sharedFrame {
	var b bytes.Buffer
	b.Grow(len(html) + len(html)/4 + 64) // "data: " and a line feed a line
	e := eventData{w: &b}
	_, _ = e.Write(html)
	e.w = nil
	return sharedFrame{html: html, data: b.Bytes(), end: e}
}

// event is a details event of the shared details between before and after.
func (f sharedFrame) event(before, after []byte) net.Buffers {
	var head, tail bytes.Buffer
	if len(before) > 0 && before[len(before)-1] != '\n' {
		// The shared details would not start a line of the event's data:
		// framed whole, for this tab.
		_ = writeDetails(&head, before, f.html, after)
		return net.Buffers{head.Bytes()}
	}
	_ = writeDetails(&head, before) // its data's lines, the last one ended
	head.Truncate(head.Len() - 1)   // the event goes on: not the empty line that would end it
	e := f.end
	e.w = &tail
	_, _ = e.Write(after)
	_ = e.end()
	return net.Buffers{head.Bytes(), f.data, tail.Bytes()}
}
