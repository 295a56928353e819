package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/store"
)

// writeWait bounds one write of events to one tab. The tabs of a run are
// written to one after the other: a tab that has stopped reading (a laptop
// closed without its connection being closed) holds the others' events up to
// this long once, and is then dropped; its browser reconnects when it wakes.
const writeWait = 10 * time.Second

// errNoTabs ends a run's writer's watch: every tab has left.
var errNoTabs = errors.New("no tab watches the run")

// runStreams are the event streams of the watched runs: for each, one writer
// goroutine that takes the engine's readings and writes each event to every tab
// watching the run. A tab costs no goroutine of its own: over HTTP/1.1 its
// connection is taken from the server once the stream's header is written
// (the server's goroutine, its background reader and its buffers end there),
// and only the connection is kept; over HTTP/2, where a connection cannot be
// taken, the stream's handler waits for the writer to end it
// (docs/benchmarks.md, "The dashboard").
type runStreams struct {
	mu   sync.Mutex
	runs map[int64]*runStream
}

// runStream is one watched run's tabs. A runStream that has no tab left, or
// whose run has ended, is taken out of runStreams at once, in the same lock as
// its last tab: a tab that comes after it starts a new one.
type runStream struct {
	runID  int64
	opened store.Run // the run as the first tab's page saw it, for the events' estado while it runs
	subs   []*streamSub
}

// streamSub is one tab watching a run.
type streamSub struct {
	page    pageData      // who the tab's caller is and its form token
	out     streamOut     // where its events go
	fresh   bool          // joined since the last event (guarded by runStreams.mu): the next reading goes to it at once
	actions streamActions // its caller's actions, rendered by the run's writer only

	mu     sync.Mutex
	closed bool          // its stream has ended; nothing more is written to it
	done   chan struct{} // closed with closed
}

// streamOut is where a tab's events are written: its taken connection, or its
// HTTP/2 response.
type streamOut interface {
	write(b []byte) error // writes b and sends it at once, within writeWait
	close()
}

// connOut is an HTTP/1.x connection taken from the server, the stream's body
// read by the browser until the connection closes.
type connOut struct{ conn net.Conn }

func (c connOut) write(b []byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(writeWait)); err != nil {
		return err
	}
	_, err := c.conn.Write(b)
	return err
}

func (c connOut) close() { _ = c.conn.Close() }

// responseOut is an HTTP/2 stream's response; its handler waits on the tab's
// done and returns when it closes.
type responseOut struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (r responseOut) write(b []byte) error {
	if err := r.rc.SetWriteDeadline(time.Now().Add(writeWait)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := r.w.Write(b); err != nil {
		return err
	}
	return r.rc.Flush()
}

func (responseOut) close() {}

// send writes b to the tab unless its stream has ended.
func (s *streamSub) send(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	return s.out.write(b)
}

// end ends the tab's stream: its connection is closed, its handler (HTTP/2)
// returns. Called by the writer, or by an HTTP/2 handler whose tab has gone.
func (s *streamSub) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.out.close()
		close(s.done)
	}
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
	s.subs = append(s.subs, sub)
	return s, first
}

// leave takes a tab out of its run's stream, and the stream out of runStreams
// when it was the last.
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
// and writes them to its tabs until the run ends, every tab has left, or the
// dashboard stops. "progress" events carry the bar's figures (the last one with
// final set), at most one every eventEvery but the final one; "details" events
// carry the page's details below the bar as HTML (each tab's caller's actions,
// then the run's shared details), at most every detailsEvery while chunks end,
// and once more, before the final progress event, with the run's end.
func (d *Dashboard) writeRun(s *runStream, detailsDone int) {
	ctx, cancel := context.WithCancel(d.base)
	defer cancel()
	build := func(ctx context.Context) (runView, error) { return d.buildRunView(ctx, s.runID) }
	// The view's details read at this event; nil when there are none to send
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
	var buf bytes.Buffer // one tab's event(s), framed; reused from tab to tab
	send := func(p progress.Snapshot, final *engine.Report) error {
		now := time.Now()
		due := final != nil || now.Sub(sent) >= eventEvery
		to, all := d.streams.targets(s, due, final != nil)
		if all == 0 {
			return errNoTabs
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
		if err != nil {
			return err
		}
		var reloadEv []byte // the final progress event for a tab whose details could not be sent
		for _, sub := range to {
			buf.Reset()
			sendDetails := v != nil
			if sendDetails {
				if err := sub.actions.render(d, sub.page, *v); err != nil {
					d.logger.WarnContext(ctx, "dashboard details not sent", "run_id", s.runID, "error", err.Error())
					sendDetails = false
				}
			}
			if final != nil {
				if sendDetails {
					_ = writeDetails(&buf, sub.actions.before, v.summary, sub.actions.after)
					buf.Write(progressEv)
				} else {
					if reloadEv == nil {
						ev.Reload = true
						if reloadEv, err = frameProgress(ev); err != nil {
							return err
						}
					}
					buf.Write(reloadEv)
				}
			} else {
				buf.Write(progressEv)
				if sendDetails {
					_ = writeDetails(&buf, sub.actions.before, v.summary, sub.actions.after)
				}
			}
			if err := sub.send(buf.Bytes()); err != nil || final != nil {
				// A tab that cannot be written to has gone (its browser
				// reconnects if it has not); the final event ends every stream.
				sub.end()
				d.streams.leave(s, sub)
			}
		}
		if final == nil && d.streams.endIfIdle(s) {
			return errNoTabs // the last tabs went while being written to
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
				// An ended stream says why; the page then stops listening.
				_ = sub.send([]byte("event: gone\ndata: {}\n\n"))
			}
			sub.end()
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
