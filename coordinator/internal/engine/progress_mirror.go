package engine

// The run's progress mirrored into Redis from the ledger, which stays the
// truth: rebuilt from it after a chunk ends and at the run's end
// (docs/architecture.md, "Exactly once, and faults").

import (
	"context"
	"strconv"
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
	var added, hadHash bool
	switch c.Status {
	case domain.ChunkSplit: // its two halves join the run's chunks
		added, hadHash, err = e.progress.MarkSplit(ctx, run.ID, run.ClosingID, index, 2, e.cfg.KeyTTL)
	case domain.ChunkSucceeded:
		added, hadHash, err = e.progress.MarkDone(ctx, run.ID, run.ClosingID, index, c.Employees, c.Records, e.cfg.KeyTTL)
	default:
		added, hadHash, err = e.progress.MarkDone(ctx, run.ID, run.ClosingID, index, 0, 0, e.cfg.KeyTTL)
	}
	if added || err != nil { // once per chunk: the done set says whether it was recorded before
		e.logger.InfoContext(ctx, msgChunkEnded, chunkSummary(run, c)...)
	}
	if err == nil && !hadHash {
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
	f, err := e.progress.Get(ctx, run.ID, "progress")
	if err != nil {
		return err
	}
	snap, ok := progress.ParseSnapshot(f)
	if !ok {
		return e.rebuildProgress(ctx, run.ID)
	}
	snap = progress.Compute(snap, run.StartedAt, time.Now())
	e.gauges.setPending(run.ID, snap.TotalChunks-snap.ChunksDone)
	// Only the derived fields: the counters belong to MarkDone, which may have moved
	// them since they were read here.
	return e.progress.Set(ctx, run.ID, run.ClosingID, "progress", snap.DerivedFields(), e.cfg.KeyTTL)
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
	if err := e.progress.Reset(ctx, runID, run.ClosingID, done, e.progressFields(run, snap), e.cfg.KeyTTL); err != nil {
		return err
	}
	e.gauges.setPending(runID, snap.TotalChunks-snap.ChunksDone)
	e.logger.InfoContext(ctx, "progress rebuilt from ledger", "consolidation_id", runID, "chunks_done", len(done))
	return nil
}

// ensureProgress rebuilds a run's progress when its Redis keys are gone.
func (e *Engine) ensureProgress(ctx context.Context, runID int64) error {
	f, err := e.progress.Get(ctx, runID, "progress")
	if err != nil {
		return err
	}
	if _, ok := progress.ParseSnapshot(f); ok {
		return nil
	}
	return e.rebuildProgress(ctx, runID)
}

func (e *Engine) progressFields(run store.Run, s progress.Snapshot) map[string]string {
	f := s.Fields()
	f["consolidation_id"] = strconv.FormatInt(run.ID, 10)
	f["closing_id"] = strconv.FormatInt(run.ClosingID, 10)
	return f
}
