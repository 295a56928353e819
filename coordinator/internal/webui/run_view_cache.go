package webui

import (
	"context"
	"sync"
	"time"
)

// runViewCache shares one build of a run's view (its report, chunk map, chart,
// trace id and the details rendered once: runView.summary) among the tabs that
// ask for it: a running run's view for ttl, so many tabs on one run cost the
// ledger and the coordinator about one build and one render per ttl, whatever
// their number (docs/benchmarks.md, "The dashboard"). An ended run's view no
// longer changes and is kept until nobody asked for it for forgetAfter: every
// tab asks once more when it sees the end, and they all ask at that moment.
type runViewCache struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[int64]*runViewEntry
}

type runViewEntry struct {
	mu    sync.Mutex // held while building: the tabs that come meanwhile wait for it
	at    time.Time  // built
	asked time.Time  // last asked for; guarded by the cache's mu
	view  runView
}

// forgetAfter drops the views of runs nobody asked about for this long.
const forgetAfter = time.Minute

func newRunViewCache(ttl time.Duration) *runViewCache {
	return &runViewCache{ttl: ttl, entries: map[int64]*runViewEntry{}}
}

// get returns the run's view, built by build unless a build shared with other
// tabs is fresh enough: an ended run's, or a running run's younger than ttl.
// ended says the caller saw the run end, so a view that still shows it running
// is not enough.
func (c *runViewCache) get(ctx context.Context, runID int64, ended bool, build func(context.Context) (runView, error)) (runView, error) {
	now := time.Now()
	c.mu.Lock()
	for id, e := range c.entries {
		if now.Sub(e.asked) > forgetAfter {
			delete(c.entries, id)
		}
	}
	e, ok := c.entries[runID]
	if !ok {
		e = &runViewEntry{}
		c.entries[runID] = e
	}
	e.asked = now
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && (!e.view.Running || (!ended && time.Since(e.at) < c.ttl)) {
		return e.view, nil
	}
	v, err := build(ctx)
	if err != nil {
		return runView{}, err
	}
	at := time.Now()
	e.at, e.view = at, v
	if v.Running {
		// A running run's view is let go once stale: its tabs' writer builds
		// it again every detailsEvery anyway, and holding it in between would
		// keep it in the heap the collector paces itself by.
		time.AfterFunc(c.ttl, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.at.Equal(at) {
				e.at, e.view = time.Time{}, runView{}
			}
		})
	}
	return v, nil
}

// forget drops a run's view, so the next ask builds it: after an action changed
// the run.
func (c *runViewCache) forget(runID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, runID)
}
