package webui

import (
	"context"
	"sync"
	"time"
)

// runViewCache shares one build of a running run's view (its report, chunk map,
// chart and trace id) among the tabs that ask for it within ttl of each other: a
// tab asks as chunks end, so many tabs on one run cost the ledger and the
// coordinator's CPU about one build per ttl, whatever their number. An ended
// run's view no longer changes and is built when asked, not kept.
type runViewCache struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[int64]*runViewEntry
}

type runViewEntry struct {
	mu   sync.Mutex // held while building: the tabs that come meanwhile wait for it
	at   time.Time
	view runView
}

// forgetAfter drops the views of runs nobody asked about for this long.
const forgetAfter = time.Minute

func newRunViewCache(ttl time.Duration) *runViewCache {
	return &runViewCache{ttl: ttl, entries: map[int64]*runViewEntry{}}
}

func (c *runViewCache) get(ctx context.Context, runID int64, build func(context.Context) (runView, error)) (runView, error) {
	c.mu.Lock()
	for id, e := range c.entries {
		if e.mu.TryLock() {
			if time.Since(e.at) > forgetAfter {
				delete(c.entries, id)
			}
			e.mu.Unlock()
		}
	}
	e, ok := c.entries[runID]
	if !ok {
		e = &runViewEntry{}
		c.entries[runID] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && time.Since(e.at) < c.ttl {
		return e.view, nil
	}
	v, err := build(ctx)
	if err != nil {
		return runView{}, err
	}
	if !v.Running {
		c.mu.Lock()
		if c.entries[runID] == e {
			delete(c.entries, runID)
		}
		c.mu.Unlock()
		return v, nil
	}
	e.at, e.view = time.Now(), v
	return v, nil
}

// forget drops a run's view, so the next ask builds it: after an action changed
// the run.
func (c *runViewCache) forget(runID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, runID)
}
