package webui

import (
	"context"
	"sync"
	"time"

	"github.com/nominacl/consolidation/pkg/store"
)

// chunkMapCache shares one reading of a running run's chunk map among the tabs
// that ask for it within ttl of each other (a tab asks as chunks end), so many
// tabs on one run cost the ledger about one read per ttl. An ended run's map no
// longer changes and is read when asked (it is not kept).
type chunkMapCache struct {
	read func(ctx context.Context, runID int64) ([]store.ChunkCell, error)
	ttl  time.Duration

	mu      sync.Mutex
	entries map[int64]*chunkMapEntry
}

type chunkMapEntry struct {
	mu    sync.Mutex // held while reading: the tabs that come meanwhile wait for it
	at    time.Time
	cells []store.ChunkCell
}

func newChunkMapCache(read func(ctx context.Context, runID int64) ([]store.ChunkCell, error), ttl time.Duration) *chunkMapCache {
	return &chunkMapCache{read: read, ttl: ttl, entries: map[int64]*chunkMapEntry{}}
}

func (c *chunkMapCache) get(ctx context.Context, runID int64, ended bool) ([]store.ChunkCell, error) {
	if ended {
		c.mu.Lock()
		delete(c.entries, runID)
		c.mu.Unlock()
		return c.read(ctx, runID)
	}
	c.mu.Lock()
	e, ok := c.entries[runID]
	if !ok {
		e = &chunkMapEntry{}
		c.entries[runID] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Since(e.at) < c.ttl {
		return e.cells, nil
	}
	cells, err := c.read(ctx, runID)
	if err != nil {
		return nil, err
	}
	e.at, e.cells = time.Now(), cells
	return cells, nil
}
