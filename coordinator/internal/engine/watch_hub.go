package engine

import (
	"context"
	"sync"
	"time"
)

// watchHub shares one reading of a run's progress among everyone watching it
// (WatchConsolidation streams, a Cancel waiting for the end), so a run costs the
// same ledger reads however many watch it. The first watcher of a run starts its
// feed: one poller that reads the run's report when notify says it changed and
// every WatchEvery (for runs driven by another replica, and elapsed time), and
// publishes it to every watcher. The last watcher to leave stops the poller and
// drops the feed; when the run has ended (or cannot be read) every watcher gets
// that last reading and the feed is dropped. notify for a run nobody watches does
// nothing, so the hub holds only runs being watched.
type watchHub struct {
	read  func(ctx context.Context, runID int64) (Report, error)
	every time.Duration

	mu    sync.Mutex
	feeds map[int64]*runFeed
}

// newWatchHub builds a hub whose pollers read with read, at least every every.
func newWatchHub(read func(ctx context.Context, runID int64) (Report, error), every time.Duration) *watchHub {
	return &watchHub{read: read, every: every, feeds: map[int64]*runFeed{}}
}

// runFeed is the poller of one watched run and its watchers. Its fields are
// guarded by the hub's mu.
type runFeed struct {
	runID    int64
	wake     chan struct{} // capacity 1: a change since the poller last read
	stop     context.CancelFunc
	watchers map[*watcher]struct{}
	latest   *watchUpdate // the last reading, handed at once to a watcher who joins
}

// watchUpdate is one reading of a run: its report, or the error that ends the
// watch. It is final when the run has ended or err is set.
type watchUpdate struct {
	report Report
	err    error
}

func (u *watchUpdate) final() bool { return u.err != nil || u.report.Run.Finished() }

// watcher receives a feed's readings with latest-value semantics: a watcher that
// is behind finds only the newest reading waiting, never a queue, so a slow one
// holds up neither the poller nor the others.
type watcher struct {
	feed  *runFeed
	ready chan struct{} // capacity 1: next holds a reading not taken yet

	mu   sync.Mutex
	next *watchUpdate
}

func (w *watcher) offer(u *watchUpdate) {
	w.mu.Lock()
	w.next = u
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default: // already signalled; the newer reading replaced the older
	}
}

// take returns the newest reading not taken yet, or nil: a signal on ready may
// come after its reading was taken on an earlier one.
func (w *watcher) take() *watchUpdate {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.next
	w.next = nil
	return u
}

// subscribe adds a watcher to a run's feed, starting the feed if nobody watches
// the run yet. The caller must unsubscribe.
func (h *watchHub) subscribe(runID int64) *watcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.feeds[runID]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		f = &runFeed{runID: runID, wake: make(chan struct{}, 1), stop: cancel, watchers: map[*watcher]struct{}{}}
		h.feeds[runID] = f
		go h.poll(ctx, f)
	}
	w := &watcher{feed: f, ready: make(chan struct{}, 1)}
	f.watchers[w] = struct{}{}
	if f.latest != nil {
		w.offer(f.latest)
	}
	return w
}

// unsubscribe removes a watcher; the last one out stops the feed's poller and
// drops the feed.
func (h *watchHub) unsubscribe(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := w.feed
	delete(f.watchers, w)
	if len(f.watchers) == 0 {
		h.drop(f)
	}
}

// drop stops a feed's poller and removes the feed, unless a newer feed of the
// run replaced it already. The caller holds mu.
func (h *watchHub) drop(f *runFeed) {
	f.stop()
	if h.feeds[f.runID] == f {
		delete(h.feeds, f.runID)
	}
}

// notify wakes the poller of a run if anyone watches it.
func (h *watchHub) notify(runID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.feeds[runID]; ok {
		select {
		case f.wake <- struct{}{}:
		default: // a read is already due
		}
	}
}

// size is the number of runs being watched.
func (h *watchHub) size() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.feeds)
}

// poll reads a run until it has ended or nobody watches it (ctx ends). A notify
// that arrives during a read leaves wake set, so the change is read next.
func (h *watchHub) poll(ctx context.Context, f *runFeed) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		r, err := h.read(ctx, f.runID)
		if ctx.Err() != nil {
			return // nobody watches any more
		}
		u := &watchUpdate{report: r, err: err}
		h.publish(f, u)
		if u.final() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-t.C:
		}
	}
}

// publish hands a reading to every watcher of the feed; a final one also drops
// the feed, so whoever watches the run next starts a feed of their own.
func (h *watchHub) publish(f *runFeed, u *watchUpdate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.latest = u
	for w := range f.watchers {
		w.offer(u)
	}
	if u.final() {
		h.drop(f)
	}
}
