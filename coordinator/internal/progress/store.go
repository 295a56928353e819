// Package progress publishes a run's progress and its closing's metrics to
// Redis, where the payroll application reads them (docs/architecture.md,
// "Exactly once, and faults"). It owns the layout: the key names, the hashes' fields,
// the set of done chunks that makes a chunk count once, and how long the keys
// live. Redis is never the record of what finished (the chunk ledger in
// PostgreSQL is): when its keys are lost (FLUSHALL, restart) the engine
// publishes them again from the ledger.
package progress

import (
	"context"
	"time"
)

// Store is what the engine needs to publish progress. RedisStore implements it
// with go-redis. Every write names the run's closing too: the closing's progress
// and metrics show its latest run.
type Store interface {
	Ping(ctx context.Context) error
	// ChunkEnded records a chunk that ended (succeeded, failed or split): the
	// first time only, its employees and records join the run's, and a split
	// chunk's halves join the run's chunks, as the ledger's split did (so the
	// counters agree with a Publish from the ledger). first says whether the chunk
	// was new; found whether the run's progress was there (if not, its keys were
	// lost and the run must be published again).
	ChunkEnded(ctx context.Context, run Run, c ChunkEnd) (first, found bool, err error)
	// Publish replaces a run's progress: its done chunks and the counters of s.
	// A new run of the closing drops the metrics an earlier run published.
	Publish(ctx context.Context, run Run, done []int, s Snapshot) error
	// Refresh writes the percent, elapsed time and ETA of s, never its counters,
	// which ChunkEnded may have moved since s was read.
	Refresh(ctx context.Context, run Run, s Snapshot) error
	// Progress reads a run's progress; ok is false when it is missing or partial.
	Progress(ctx context.Context, runID int64) (s Snapshot, ok bool, err error)
	// PublishMetrics publishes the closing's metrics at its run's end.
	PublishMetrics(ctx context.Context, run Run, m Metrics) error
}

// Run is the run whose progress is published, and how long it is kept.
type Run struct {
	ID        int64
	ClosingID int64
	// KeepFor is how long the run's keys live after a write: longer than any run.
	KeepFor time.Duration
}

// ChunkEnd is a chunk the ledger recorded ended.
type ChunkEnd struct {
	Index int
	// Employees and Records the chunk consolidated (0 unless it succeeded).
	Employees int
	Records   int
	// Halves is the number of chunks it split into (0 unless it split).
	Halves int
}
