package engine

// The run's progress mirrored into Redis from the ledger, which stays the
// truth: rebuilt from it after a chunk ends and at the run's end
// (docs/architecture.md, "Exactly once, and faults").

import (
	"context"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// chunkEnded records a done chunk (succeeded, failed or split; never one the
// run's end cancelled) in Redis, from the ledger's numbers; lost keys are rebuilt.
func (e *Engine) chunkEnded(ctx context.Context, run store.Run, index int) {
	c, err := e.ledger.GetChunk(ctx, run.ID, index)
	if err != nil || !c.Status.Done() {
		return
	}
	end := progress.ChunkEnd{Index: index}
	switch c.Status {
	case domain.ChunkSplit: // its two halves join the run's chunks
		end.Halves = 2
	case domain.ChunkSucceeded:
		end.Employees, end.Records = c.Employees, c.Records
	}
	first, found, err := e.progress.ChunkEnded(ctx, e.progressRun(run), end)
	if first || err != nil { // once per chunk: the store says whether it was recorded before
		e.logger.InfoContext(ctx, msgChunkEnded, chunkSummary(run, c)...)
	}
	if err == nil && !found {
		err = e.rebuildProgress(ctx, run.ID)
	}
	if err == nil {
		err = e.refreshProgress(ctx, run)
	}
	if err != nil {
		e.logger.WarnContext(ctx, "updating progress in redis", "consolidation_id", run.ID, "error", err.Error())
	}
	e.notify(run.ID)
}

// refreshProgress recomputes percent, elapsed and ETA from the counters.
func (e *Engine) refreshProgress(ctx context.Context, run store.Run) error {
	snap, ok, err := e.progress.Progress(ctx, run.ID)
	if err != nil {
		return err
	}
	if !ok {
		return e.rebuildProgress(ctx, run.ID)
	}
	snap = progress.Compute(snap, run.StartedAt, time.Now())
	e.gauges.setPending(run.ID, snap.TotalChunks-snap.ChunksDone)
	return e.progress.Refresh(ctx, e.progressRun(run), snap)
}

// ledgerSnapshot computes a run's progress from the ledger, the source of truth.
func (e *Engine) ledgerSnapshot(ctx context.Context, runID int64) (store.Run, progress.Snapshot, []int, error) {
	run, err := e.ledger.GetRun(ctx, runID)
	if err != nil {
		return run, progress.Snapshot{}, nil, err
	}
	ended, err := e.ledger.Chunks(ctx, runID, 0, domain.ChunkSucceeded, domain.ChunkFailed, domain.ChunkSplit)
	if err != nil {
		return run, progress.Snapshot{}, nil, err
	}
	done := make([]int, len(ended))
	for i, c := range ended {
		done[i] = c.Index
	}
	end := time.Now()
	if run.Finished() {
		end = run.FinishedAt
	}
	snap := progress.Compute(progress.Snapshot{TotalChunks: run.TotalChunks, ChunksDone: len(done),
		EmployeesDone: run.EmployeesDone, TotalEmployees: run.TotalEmployees, Records: run.Records}, run.StartedAt, end)
	return run, snap, done, nil
}

// rebuildProgress rewrites a run's Redis keys from the ledger.
func (e *Engine) rebuildProgress(ctx context.Context, runID int64) error {
	run, snap, done, err := e.ledgerSnapshot(ctx, runID)
	if err != nil {
		return err
	}
	if err := e.progress.Publish(ctx, e.progressRun(run), done, snap); err != nil {
		return err
	}
	e.gauges.setPending(runID, snap.TotalChunks-snap.ChunksDone)
	e.logger.InfoContext(ctx, "progress rebuilt from ledger", "consolidation_id", runID, "chunks_done", len(done))
	return nil
}

// ensureProgress rebuilds a run's progress when its Redis keys are gone.
func (e *Engine) ensureProgress(ctx context.Context, runID int64) error {
	_, ok, err := e.progress.Progress(ctx, runID)
	if err != nil || ok {
		return err
	}
	return e.rebuildProgress(ctx, runID)
}

// progressRun is run as the progress store names it, kept KeyTTL.
func (e *Engine) progressRun(run store.Run) progress.Run {
	return progress.Run{ID: run.ID, ClosingID: run.ClosingID, KeepFor: e.cfg.KeyTTL}
}
