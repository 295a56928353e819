package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// drive takes a run from its ledger to its end: it holds the run's advisory lock
// (so one coordinator drives it), clears the closing's previous results, dispatches
// every unfinished chunk, and finishes the run. Called again on a run half done (a
// restarted coordinator) it re-dispatches only what is not finished.
func (e *Engine) drive(ctx context.Context, runID int64) {
	// Setting up must not be cut short by a cancel: a cancelled run still has to
	// be finished, and only its driver may finish it.
	setup := context.WithoutCancel(ctx)
	unlock, locked, err := e.ledger.LockRun(setup, runID)
	if err != nil {
		e.logger.WarnContext(ctx, "driving run: no database connection", "consolidation_id", runID, "error", err.Error())
		return
	}
	if !locked {
		return // another coordinator drives it
	}
	defer unlock()

	run, err := e.ledger.GetRun(setup, runID)
	if err != nil || run.Finished() {
		return
	}
	ctx, cancelDeadline := context.WithDeadlineCause(ctx, run.Deadline, context.DeadlineExceeded)
	defer cancelDeadline()
	log := e.logger.With("consolidation_id", runID, "closing_id", run.ClosingID)
	if run.CancelRequested || errors.Is(context.Cause(ctx), errCancelled) {
		e.finish(ctx, run, errCancelled)
		return
	}
	if errors.Is(context.Cause(ctx), errEngineStopped) {
		return
	}
	if run.Mode == domain.ModeFull {
		n, err := e.ledger.ClearPreviousResults(ctx, run.ClosingID, runID)
		if err != nil {
			e.stopped(ctx, run, "clearing previous results", err)
			return
		}
		if n > 0 {
			log.InfoContext(ctx, "previous results cleared", "employees", n)
		}
	}
	if err := e.rebuildProgress(ctx, runID); err != nil {
		log.WarnContext(ctx, "rebuilding progress", "error", err.Error())
	}
	todo, err := e.ledger.Chunks(ctx, runID, 0, domain.ChunkPending, domain.ChunkRunning)
	if err != nil {
		e.stopped(ctx, run, "listing chunks", err)
		return
	}
	if len(todo) < run.TotalChunks {
		log.InfoContext(ctx, "resuming run", "chunks_left", len(todo), "chunks", run.TotalChunks)
	}

	// A chunk that meets a permanent database error stops the others with it.
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	var wg sync.WaitGroup
	for _, c := range todo {
		lease, err := e.workers.Acquire(ctx, run.ID)
		if err != nil {
			break // cancelled, timed out, failed or stopping
		}
		wg.Go(func() { e.runChunk(ctx, run, c, lease, fail) })
	}
	wg.Wait()
	e.stopped(ctx, run, "", nil)
}

// stopped ends the run according to why driving stopped: cancel, timeout, engine
// shutdown (leave it for a resume), a permanent database error (the run fails with
// it), an error while doing step (left for the reconciler to retry), or all chunks
// done.
func (e *Engine) stopped(ctx context.Context, run store.Run, step string, err error) {
	cause := context.Cause(ctx)
	var failure *runFailure
	switch {
	case errors.Is(cause, errEngineStopped):
		e.logger.Info("run left for resume", "consolidation_id", run.ID)
		return
	case errors.Is(cause, errCancelled), errors.Is(cause, context.DeadlineExceeded):
		e.finish(ctx, run, cause)
	case errors.As(cause, &failure):
		e.finish(ctx, run, failure)
	case err != nil:
		if failure = asRunFailure(step, err); failure != nil {
			e.finish(ctx, run, failure)
			return
		}
		e.logger.ErrorContext(ctx, "driving run failed; the reconciler will retry", "consolidation_id", run.ID,
			"step", step, "error", err.Error())
	default:
		e.finish(ctx, run, nil)
	}
}

// runChunk dispatches one chunk until it commits, fails for good, or the run stops.
// A permanent database error while dispatching stops the run: fail(its *runFailure).
func (e *Engine) runChunk(ctx context.Context, run store.Run, c store.Chunk, lease lease, fail context.CancelCauseFunc) {
	log := e.logger.With("consolidation_id", run.ID, "chunk", c.Index)
	for try := 1; ; try++ {
		token := rand.Int64N(1<<62) + 1
		attempt, ok, err := e.ledger.DispatchChunk(ctx, run.ID, c.Index, token, lease.Worker())
		if err != nil || !ok {
			lease.Release(false)
			if err == nil {
				e.chunkEnded(ctx, run, c.Index) // finished meanwhile (by an earlier attempt)
			} else if failure := asRunFailure(fmt.Sprintf("dispatching chunk %d", c.Index), err); failure != nil {
				fail(failure)
			}
			return
		}
		callCtx, cancel := context.WithTimeout(ctx, e.cfg.ChunkHardTimeout)
		res, err := lease.ProcessChunk(callCtx, dispatch.ChunkRequest{
			RunID: run.ID, ClosingID: run.ClosingID, Index: c.Index, Token: token,
		})
		cancel()
		v := classifyAttempt(res, err, context.Cause(ctx))
		switch v.Outcome {
		case domain.OutcomeCommitted, domain.OutcomeFromLedger:
			lease.Release(false)
			e.count(ctx, domain.OutcomeCommitted) // the metric counts every success as committed
			if v.Outcome == domain.OutcomeFromLedger {
				_ = e.ledger.EndAttempt(ctx, run.ID, c.Index, attempt, domain.OutcomeFromLedger, "")
			}
			e.chunkEnded(ctx, run, c.Index)
			return
		case domain.OutcomeAbandoned:
			lease.Release(false)
			_ = e.ledger.EndAttempt(context.WithoutCancel(ctx), run.ID, c.Index, attempt, domain.OutcomeAbandoned, v.Text)
			return
		}
		e.count(ctx, v.Outcome)
		lease.Release(v.CoolDown)
		_ = e.ledger.EndAttempt(ctx, run.ID, c.Index, attempt, v.Outcome, v.Text)
		// A worker may have died after its commit: the ledger knows.
		if ch, err := e.ledger.GetChunk(ctx, run.ID, c.Index); err == nil && ch.Status == domain.ChunkSucceeded {
			e.chunkEnded(ctx, run, c.Index)
			return
		}
		next := afterFailure(v, try, e.cfg.MaxAttempts)
		if !next.Retry {
			if next.FailChunk {
				if _, err := e.ledger.FailChunk(ctx, run.ID, c.Index, token, next.Reason); err != nil {
					log.WarnContext(ctx, "recording chunk failure", "error", err.Error())
				}
				log.WarnContext(ctx, "chunk failed", "attempts", try, "outcome", v.Outcome)
			}
			e.chunkEnded(ctx, run, c.Index)
			return
		}
		log.InfoContext(ctx, "chunk attempt failed, retrying", "attempt", try, "outcome", v.Outcome, "code", callCode(err))
		if !sleepBackoff(ctx, e.cfg.RetryBaseDelay, e.cfg.RetryMaxDelay, try) {
			return
		}
		if lease, err = e.workers.Acquire(ctx, run.ID); err != nil {
			return
		}
	}
}

// callCode is the transport's name for a failed call, for logs.
func callCode(err error) string {
	var ce *dispatch.CallError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

func (e *Engine) count(ctx context.Context, outcome domain.Outcome) {
	e.attempts.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", string(outcome))))
}

// sleepBackoff waits base·2^(try-1), capped, with full jitter; false if ctx ended.
func sleepBackoff(ctx context.Context, base, maxDelay time.Duration, try int) bool {
	d := base << min(try-1, 20)
	if d <= 0 || d > maxDelay {
		d = maxDelay
	}
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// chunkEnded records a finished chunk (succeeded or failed) in Redis, from the
// ledger's numbers; lost keys are rebuilt.
func (e *Engine) chunkEnded(ctx context.Context, run store.Run, index int) {
	c, err := e.ledger.GetChunk(ctx, run.ID, index)
	if err != nil || (c.Status != domain.ChunkSucceeded && c.Status != domain.ChunkFailed) {
		return
	}
	employees, records := 0, 0
	if c.Status == domain.ChunkSucceeded {
		employees, records = c.Employees, c.Records
	}
	_, hadHash, err := e.progress.MarkDone(ctx, run.ID, run.ClosingID, index, employees, records, e.cfg.KeyTTL)
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
	return e.progress.Set(ctx, run.ID, run.ClosingID, "progress", e.progressFields(run, snap), e.cfg.KeyTTL)
}

// ledgerSnapshot computes a run's progress from the ledger, the source of truth.
func (e *Engine) ledgerSnapshot(ctx context.Context, runID int64) (store.Run, progress.Snapshot, []int, error) {
	run, err := e.ledger.GetRun(ctx, runID)
	if err != nil {
		return run, progress.Snapshot{}, nil, err
	}
	ended, err := e.ledger.Chunks(ctx, runID, 0, domain.ChunkSucceeded, domain.ChunkFailed)
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

// finish decides the run's end (SPEC section 6) and records it.
func (e *Engine) finish(ctx context.Context, run store.Run, cause error) {
	ctx = context.WithoutCancel(ctx)
	f := runFacts{Cancelled: errors.Is(cause, errCancelled), DeadlinePassed: errors.Is(cause, context.DeadlineExceeded)}
	if failure := (*runFailure)(nil); errors.As(cause, &failure) {
		f.Failure = failure.Text
	}
	if !f.Cancelled && !f.DeadlinePassed && f.Failure == "" {
		step, totals := "reading the run", store.ControlTotals{}
		latest, err := e.ledger.GetRun(ctx, run.ID)
		if err == nil {
			step = "checking control totals"
			totals, err = e.ledger.CheckControlTotals(ctx, run.ID)
		}
		switch failure := asRunFailure(step, err); {
		case failure != nil:
			f.Failure = failure.Text
		case err != nil:
			e.logger.ErrorContext(ctx, "finishing run failed; the reconciler will retry", "consolidation_id", run.ID,
				"step", step, "error", err.Error())
			return
		default:
			f.ChunksSucceeded, f.TotalChunks, f.Totals = latest.ChunksSucceeded, latest.TotalChunks, totals
		}
	}
	o := decideRunEnd(f)
	if f.Failure != "" {
		e.logger.ErrorContext(ctx, "run failed on a permanent database error", "consolidation_id", run.ID,
			"closing_id", run.ClosingID, "error", f.Failure)
	}
	finished, err := e.ledger.FinishRun(ctx, run.ID, o)
	if failure := asRunFailure("finishing the run", err); failure != nil {
		// Finishing can never succeed: end the run in error without its last steps.
		o = store.RunEnd{Estado: domain.EstadoError, Error: failure.Text}
		e.logger.ErrorContext(ctx, "run failed on a permanent database error", "consolidation_id", run.ID,
			"closing_id", run.ClosingID, "error", failure.Text)
		finished, err = e.ledger.AbortRun(ctx, run.ID, failure.Text)
	}
	if err != nil {
		e.logger.ErrorContext(ctx, "finishing run failed; the reconciler will retry", "consolidation_id", run.ID, "error", err.Error())
		return
	}
	if !finished {
		return
	}
	e.notify(run.ID)
	e.runsFinished.Add(ctx, 1, metric.WithAttributes(attribute.String("estado", string(o.Estado))))
	if err := e.rebuildProgress(ctx, run.ID); err != nil {
		e.logger.WarnContext(ctx, "final progress", "consolidation_id", run.ID, "error", err.Error())
	}
	if m, err := e.ledger.GetMetrics(ctx, run.ClosingID); err == nil {
		_ = e.progress.Set(ctx, run.ID, run.ClosingID, "metrics", map[string]string{
			"throughput_empleados_sec": strconv.FormatFloat(m.ThroughputEmpleadosSec, 'f', 1, 64),
			"throughput_registros_sec": strconv.FormatFloat(m.ThroughputRegistrosSec, 'f', 1, 64),
			"memoria_pico_mb":          strconv.FormatFloat(m.MemoriaPicoMB, 'f', 1, 64),
			"cpu_promedio_percent":     strconv.FormatFloat(m.CPUPromedioPercent, 'f', 1, 64),
			"tiempo_total":             strconv.FormatFloat(m.TiempoTotal, 'f', 3, 64),
			"workers_utilizados":       strconv.Itoa(m.WorkersUtilizados),
		}, e.cfg.KeyTTL)
	}
	e.logger.InfoContext(ctx, "consolidation finished", "consolidation_id", run.ID, "closing_id", run.ClosingID,
		"estado", o.Estado)
}
