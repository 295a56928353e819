package engine

import (
	"context"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
)

// workers is what the engine needs of the worker pool: a slot on some worker, and
// whether any worker is serving. dispatcherWorkers implements it with a
// dispatch.Dispatcher.
type workers interface {
	// Acquire waits for a free slot on some worker for a run of size employees;
	// the smallest run waiting is served first (docs/architecture.md, "Many runs
	// at once").
	Acquire(ctx context.Context, runID int64, size int) (workerSlot, error)
	// Expect says the run will ask for n slots one after another; until done is
	// called, slots freed between its asks are kept for it (dispatch.Expect).
	Expect(runID int64, size, n int) (done func())
	// Healthy returns how many workers are serving, or an error when none is.
	Healthy(ctx context.Context) (int, error)
}

// workerSlot is a call slot on one worker (never to be confused with a run's
// lease): it names the worker, processes a chunk there, and is released once,
// saying whether the worker should cool down.
type workerSlot interface {
	Worker() string
	// ProcessChunk returns a *dispatch.CallError when the call fails.
	ProcessChunk(ctx context.Context, req dispatch.ChunkRequest) (dispatch.ChunkResult, error)
	Release(coolDown bool)
}

// dispatcherWorkers is the worker pool behind a dispatch.Dispatcher.
type dispatcherWorkers struct{ d *dispatch.Dispatcher }

func (w dispatcherWorkers) Acquire(ctx context.Context, runID int64, size int) (workerSlot, error) {
	l, err := w.d.Acquire(ctx, runID, size)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (w dispatcherWorkers) Expect(runID int64, size, n int) func() { return w.d.Expect(runID, size, n) }

func (w dispatcherWorkers) Healthy(ctx context.Context) (int, error) { return w.d.Healthy(ctx) }
