package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// Ref names a run directly, or a closing (meaning its latest run).
type Ref struct {
	RunID     int64
	ClosingID int64
}

// Resolve turns a Ref into a run id.
func (e *Engine) Resolve(ctx context.Context, ref Ref) (int64, error) {
	switch {
	case ref.RunID > 0:
		return ref.RunID, nil
	case ref.ClosingID > 0:
		id, err := e.ledger.LatestRunID(ctx, ref.ClosingID)
		if errors.Is(err, store.ErrNotFound) {
			return 0, notFound(ReasonRunNotFound, "nomina_cierrenomina", ref.ClosingID, "closing %d has no consolidation", ref.ClosingID)
		}
		return id, err
	default:
		return 0, InvalidArgument("consolidation_id", "consolidation_id or closing_id must be > 0")
	}
}

// Report is everything GetConsolidation returns about a run.
type Report struct {
	Run          store.Run
	Progress     progress.Snapshot
	FailedChunks []store.Chunk // at most MaxFailedListed
	// FailedEmployees are the libro employees of the failed chunks, at most
	// MaxFailedListed (Run.EmployeesFailed counts them all).
	FailedEmployees []store.FailedEmployee
	Metrics         *store.Metrics
	// ClosingTotals adds up the closing's rows as they are now, every run's: set
	// for an ended retry_failed run, whose own totals cover only the employees it
	// retried.
	ClosingTotals *store.WriteSummary
}

// MaxFailedListed bounds the failed chunks a report lists, so no message grows
// with the closing.
const MaxFailedListed = 100

// Get reports on a run.
func (e *Engine) Get(ctx context.Context, ref Ref) (Report, error) {
	runID, err := e.Resolve(ctx, ref)
	if err != nil {
		return Report{}, err
	}
	return e.report(ctx, runID)
}

func (e *Engine) report(ctx context.Context, runID int64) (Report, error) {
	run, err := e.ledger.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return Report{}, runNotFound(runID)
	}
	if err != nil {
		return Report{}, err
	}
	r := Report{Run: run, Progress: e.liveProgress(ctx, run)}
	if run.ChunksFailed > 0 {
		if r.FailedChunks, err = e.ledger.Chunks(ctx, runID, MaxFailedListed, domain.ChunkFailed); err != nil {
			return Report{}, err
		}
		if r.FailedEmployees, err = e.ledger.FailedEmployees(ctx, runID, MaxFailedListed, false); err != nil {
			return Report{}, err
		}
	}
	if run.Finished() {
		if m, err := e.ledger.GetMetrics(ctx, run.ClosingID); err == nil && m.RunID == run.ID {
			r.Metrics = &m
		}
		if run.Mode == domain.ModeRetryFailed {
			t, err := e.ledger.ClosingTotals(ctx, run.ClosingID)
			if err != nil {
				return Report{}, err
			}
			r.ClosingTotals = &t
		}
	}
	return r, nil
}

// liveProgress reads the progress hash from Redis, or computes it from the ledger
// when Redis lost it or the run is over.
func (e *Engine) liveProgress(ctx context.Context, run store.Run) progress.Snapshot {
	if !run.Finished() {
		if s, ok, err := e.progress.Progress(ctx, run.ID); err == nil && ok {
			return progress.Compute(s, run.StartedAt, time.Now())
		}
	}
	end := time.Now()
	if run.Finished() {
		end = run.FinishedAt
	}
	s := progress.Snapshot{TotalChunks: run.TotalChunks, ChunksDone: run.ChunksSucceeded + run.ChunksFailed + run.ChunksSplit,
		EmployeesDone: run.EmployeesDone, TotalEmployees: run.TotalEmployees, Records: run.Records}
	return progress.Compute(s, run.StartedAt, end)
}

// Watch calls send with the run's progress whenever it changes, and a last time
// with the final report when the run has ended (at once for a finished run). The
// readings come from the run's feed in the watch hub, shared by every watcher of
// the run: read on every chunk this coordinator sees end, and every WatchEvery.
// A watcher that is behind gets the newest reading, never a backlog.
func (e *Engine) Watch(ctx context.Context, ref Ref, send func(p progress.Snapshot, final *Report) error) error {
	runID, err := e.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	w := e.watch.subscribe(runID)
	defer e.watch.unsubscribe(w)
	var last progress.Snapshot
	first := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.stopping():
			return errorf(KindUnavailable, "coordinator is shutting down; watch again")
		case <-w.ready:
		}
		u := w.take()
		if u == nil {
			continue // taken already, on an earlier signal
		}
		if u.err != nil {
			return u.err
		}
		if u.report.Run.Finished() {
			// Copied here only: a copy declared for every reading escapes to the heap
			// on each one, for every watcher.
			r := u.report
			return send(r.Progress, &r)
		}
		p := u.report.Progress
		if first || p.ChunksDone != last.ChunksDone || p.EmployeesDone != last.EmployeesDone ||
			p.Elapsed-last.Elapsed >= time.Second {
			if err := send(p, nil); err != nil {
				return err
			}
			last, first = p, false
		}
	}
}

// stopping is closed when the engine stops (never, before Run is called).
func (e *Engine) stopping() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.base == nil {
		return nil
	}
	return e.base.Done()
}
