// Package progress keeps the Redis side of a run: the chord's set-based completion
// counters and the old Celery design's progress and metrics hashes, namespaced by run and
// mirrored to the old Celery design's hashes of the closing (its latest run's). Redis is never
// the record of what finished (the chunk ledger in PostgreSQL is): when its keys
// are lost (FLUSHALL, restart) they are rebuilt from the ledger.
package progress

import (
	"context"
	"time"
)

// Store is what the engine needs of Redis. RedisStore implements it with go-redis.
// Writes name the run's closing too: they also keep the closing's progress and
// metrics hashes, which show the closing's latest run.
type Store interface {
	Ping(ctx context.Context) error
	// MarkDone adds a chunk to the run's done set and, the first time only, adds
	// its employees and records to the progress hash. It reports whether the chunk
	// was new and whether the progress hash existed before (if not, the keys were
	// lost and must be rebuilt).
	MarkDone(ctx context.Context, runID, closingID int64, chunk, employees, records int, ttl time.Duration) (added, hadHash bool, err error)
	// MarkSplit adds a chunk that was split to the run's done set and, the first
	// time only, adds its halves to the run's total_chunks, as the ledger's split
	// did (so the counters agree with a rebuild from the ledger). It reports like
	// MarkDone.
	MarkSplit(ctx context.Context, runID, closingID int64, chunk, halves int, ttl time.Duration) (added, hadHash bool, err error)
	// Reset replaces the run's keys: done set, and the progress hash fields. It
	// also removes the closing's metrics hash when an earlier run wrote it.
	Reset(ctx context.Context, runID, closingID int64, done []int, fields map[string]string, ttl time.Duration) error
	// Set updates fields of the run's "progress" or "metrics" hash.
	Set(ctx context.Context, runID, closingID int64, hash string, fields map[string]string, ttl time.Duration) error
	// Get reads the run's "progress" or "metrics" hash (empty when missing).
	Get(ctx context.Context, runID int64, hash string) (map[string]string, error)
}
