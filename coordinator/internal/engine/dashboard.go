package engine

import (
	"context"
	"time"

	"github.com/nominacl/consolidation/pkg/store"
)

// The dashboard's reads (coordinator/internal/webui), beside the RPCs' own:
// read-only, through the records seam.

// ChunkMap reads every chunk of a run, as the dashboard's chunk map draws them.
func (e *Engine) ChunkMap(ctx context.Context, runID int64) ([]store.ChunkCell, error) {
	if runID <= 0 {
		return nil, InvalidArgument("consolidation_id", "consolidation_id must be > 0")
	}
	return e.records.ChunkMap(ctx, runID)
}

// Throughput is the employees consolidated per bucket since a time, over every
// run (buckets with none are left out).
func (e *Engine) Throughput(ctx context.Context, since time.Time, bucket time.Duration) ([]store.ThroughputPoint, error) {
	if bucket <= 0 {
		return nil, InvalidArgument("bucket", "bucket must be positive")
	}
	return e.records.Throughput(ctx, since, bucket)
}

// WorkersActivity is, per worker the ledger names, its chunks ended since a time
// and when it was last given or ended one.
func (e *Engine) WorkersActivity(ctx context.Context, since time.Time) ([]store.WorkerActivity, error) {
	return e.records.WorkersActivity(ctx, since)
}

// Traceparent is the W3C traceparent of the call that started a run ("" when
// it was not traced), which names the run's trace.
func (e *Engine) Traceparent(ctx context.Context, runID int64) (string, error) {
	return e.ledger.RunTraceparent(ctx, runID)
}
