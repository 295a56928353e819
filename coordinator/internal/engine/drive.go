package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// drive takes a run from its ledger to its end: it acquires the run's lease (so
// one replica drives it) and renews it while driving, dispatches every unfinished
// chunk, and finishes the run (the closing's previous results are replaced chunk
// by chunk and settled at the end: store.CommitChunk, store.FinishRun). Called
// again on a run half done (a restarted coordinator, or another replica taking
// over an expired lease) it re-dispatches only what is not finished.
func (e *Engine) drive(ctx context.Context, runID int64) {
	// held lives while the engine runs and, once acquired, this replica holds the
	// lease: acquiring, setting up and finishing use it, so a cancel or the
	// deadline does not cut them short (a cancelled run still has to be finished),
	// but stopping the engine or losing the lease does. ctx, the run's work, also
	// ends on a cancel or the deadline.
	held, lose := context.WithCancelCause(context.WithoutCancel(ctx))
	defer lose(nil)
	unhook := context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), errEngineStopped) {
			lose(errEngineStopped)
		}
	})
	defer unhook()
	epoch, ok, err := e.ledger.AcquireLease(held, runID, e.cfg.Replica, e.cfg.LeaseTTL)
	if err != nil {
		if held.Err() == nil {
			e.logger.WarnContext(ctx, "driving run: acquiring its lease", "consolidation_id", runID, "error", err.Error())
		}
		return
	}
	if !ok {
		return // another replica drives it, or it has ended
	}
	e.logger.InfoContext(ctx, "run lease acquired", "consolidation_id", runID, "epoch", epoch)
	work, stop := context.WithCancelCause(ctx)
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		e.heartbeat(held, runID, epoch, stop, lose)
	}()
	e.driveLeased(work, held, runID, epoch)
	lose(nil)
	stop(nil)
	<-beating
	e.releaseLease(ctx, runID, epoch)
}

// driveLeased drives a run under the lease of epoch (see drive).
func (e *Engine) driveLeased(ctx, held context.Context, runID, epoch int64) {
	log := e.logger.With("consolidation_id", runID)
	var run store.Run
	err := e.waitOutDB(held, log, "reading the run", func(ctx context.Context) error {
		var err error
		run, err = e.ledger.GetRun(ctx, runID)
		return err
	})
	if err != nil || run.Finished() {
		return
	}
	ctx, span := e.startRunSpan(ctx, run)
	defer span.End()
	held = trace.ContextWithSpan(held, span) // the run's end is part of its trace
	ctx, cancelDeadline := context.WithDeadlineCause(ctx, run.Deadline, context.DeadlineExceeded)
	defer cancelDeadline()
	log = log.With("closing_id", run.ClosingID)
	e.gauges.driving(run.ID, run.Deadline)
	defer e.gauges.done(run.ID)
	if run.CancelRequested {
		e.finish(held, run, epoch, errCancelled)
		return
	}
	if context.Cause(ctx) != nil { // cancelled, past its deadline, or stopping
		e.stopped(ctx, held, run, epoch, "", nil)
		return
	}
	// A run's first lease (epoch 1) finds the progress its start wrote, with no
	// chunk dispatched since (were the keys lost, the first chunk's end rebuilds
	// them); any later drive (a resume, a takeover) rebuilds it from the ledger.
	if epoch != 1 {
		if err := e.rebuildProgress(ctx, runID); err != nil {
			log.WarnContext(ctx, "rebuilding progress", "error", err.Error())
		}
	}
	var todo []store.Chunk
	err = e.waitOutDB(ctx, log, "listing chunks", func(ctx context.Context) error {
		var err error
		todo, err = e.ledger.Chunks(ctx, runID, 0, domain.ChunkPending, domain.ChunkRunning)
		return err
	})
	if err != nil {
		e.stopped(ctx, held, run, epoch, "listing chunks", err)
		return
	}
	e.gauges.setPending(runID, len(todo))
	if len(todo) < run.TotalChunks {
		log.InfoContext(ctx, "resuming run", "chunks_left", len(todo), "chunks", run.TotalChunks)
	}

	// A chunk that meets a permanent database error, or finds the lease lost,
	// stops the others with it.
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	var wg sync.WaitGroup
	// spawn runs a chunk once a worker slot is free: the planned chunks, and the
	// halves of a chunk split meanwhile. false when the run stopped first.
	var spawn func(c store.Chunk) bool
	spawn = func(c store.Chunk) bool {
		lease, err := e.workers.Acquire(ctx, run.ID, run.TotalEmployees)
		if err != nil {
			return false // cancelled, timed out, failed or stopping
		}
		wg.Go(func() { e.runChunk(ctx, run, epoch, c, lease, fail, spawn) })
		return true
	}
	stopTicking := e.tickProgress(ctx, run)
	// The planned chunks are asked for one after another: said beforehand, so a
	// slot freed between two asks is not given to a larger run.
	expected := e.workers.Expect(run.ID, run.TotalEmployees, len(todo))
	for _, c := range todo {
		if !spawn(c) {
			break
		}
	}
	expected()
	wg.Wait()
	stopTicking()
	e.stopped(ctx, held, run, epoch, "", nil)
}

// stopped ends the run according to why driving stopped: cancel, timeout, engine
// shutdown or a lost lease (leave it for a resume, here or on another replica), a
// permanent database error (the run fails with it), an error while doing step
// (left for the reconciler to retry), or all chunks done. Finishing runs under
// held.
func (e *Engine) stopped(ctx, held context.Context, run store.Run, epoch int64, step string, err error) {
	cause := context.Cause(ctx)
	var failure *runFailure
	switch {
	case errors.Is(cause, errEngineStopped):
		e.logger.Info("run left for resume", "consolidation_id", run.ID)
		return
	case errors.Is(cause, errLeaseLost), errors.Is(err, store.ErrLeaseLost):
		e.logger.Warn("run left to the replica that holds its lease", "consolidation_id", run.ID)
		return
	case errors.Is(cause, errCancelled), errors.Is(cause, context.DeadlineExceeded):
		e.finish(held, run, epoch, cause)
	case errors.As(cause, &failure):
		e.finish(held, run, epoch, failure)
	case err != nil:
		if failure = asRunFailure(step, err); failure != nil {
			e.finish(held, run, epoch, failure)
			return
		}
		e.logger.ErrorContext(ctx, "driving run failed; the reconciler will retry", "consolidation_id", run.ID,
			"step", step, "error", err.Error())
	default:
		e.finish(held, run, epoch, nil)
	}
}

// runChunk dispatches one chunk until it commits, fails for good, is split (its
// halves go to spawn), or the run stops. A permanent database error while
// dispatching stops the run: fail(its *runFailure).
func (e *Engine) runChunk(ctx context.Context, run store.Run, epoch int64, c store.Chunk, lease lease,
	fail context.CancelCauseFunc, spawn func(store.Chunk) bool) {
	log := e.logger.With("consolidation_id", run.ID, "chunk", c.Index)
	var tries chunkTries
	for {
		token := rand.Int64N(1<<62) + 1
		var attempt int
		var ok bool
		err := e.waitOutDB(ctx, log, "dispatching a chunk", func(ctx context.Context) error {
			var err error
			attempt, ok, err = e.ledger.DispatchChunk(ctx, store.DispatchChunkParams{
				RunLease: store.RunLease{RunID: run.ID, Epoch: epoch}, Index: c.Index, Token: token, Worker: lease.Worker()})
			return err
		})
		if err != nil || !ok {
			lease.Release(false)
			switch {
			case err == nil:
				e.chunkEnded(ctx, run, c.Index) // finished meanwhile (by an earlier attempt)
			case errors.Is(err, store.ErrLeaseLost):
				fail(errLeaseLost)
			default:
				if failure := asRunFailure(fmt.Sprintf("dispatching chunk %d", c.Index), err); failure != nil {
					fail(failure)
				}
			}
			return
		}
		callCtx, cancel := context.WithTimeout(ctx, e.cfg.ChunkHardTimeout)
		callCtx, span := startChunkSpan(callCtx, run, c.Index, attempt, lease.Worker())
		res, err := lease.ProcessChunk(callCtx, dispatch.ChunkRequest{
			RunID: run.ID, ClosingID: run.ClosingID, Index: c.Index, Token: token,
		})
		cancel()
		v := classifyAttempt(res, err, context.Cause(ctx))
		endChunkSpan(span, v.Outcome)
		switch v.Outcome {
		case domain.OutcomeCommitted, domain.OutcomeFromLedger:
			lease.Release(false)
			e.count(ctx, domain.OutcomeCommitted) // the metric counts every success as committed
			if v.Outcome == domain.OutcomeFromLedger {
				e.endAttempt(ctx, log, run.ID, c.Index, attempt, domain.OutcomeFromLedger, "")
			}
			e.chunkEnded(ctx, run, c.Index)
			return
		case domain.OutcomeAbandoned:
			lease.Release(false)
			e.endAttempt(context.WithoutCancel(ctx), log, run.ID, c.Index, attempt, domain.OutcomeAbandoned, v.Text)
			return
		}
		e.count(ctx, v.Outcome)
		lease.Release(v.CoolDown)
		e.endAttempt(ctx, log, run.ID, c.Index, attempt, v.Outcome, v.Text)
		if v.EndsRun {
			fail(&runFailure{Text: fmt.Sprintf("chunk %d: %s", c.Index, v.Text)})
			return
		}
		// A worker may have died after its commit: the ledger knows.
		var ch store.Chunk
		chErr := e.waitOutDB(ctx, log, "reading a chunk", func(ctx context.Context) error {
			var err error
			ch, err = e.ledger.GetChunk(ctx, run.ID, c.Index)
			return err
		})
		if chErr == nil && ch.Status == domain.ChunkSucceeded {
			e.chunkEnded(ctx, run, c.Index)
			return
		}
		now := time.Now()
		tries = tries.record(v, now)
		next := afterFailure(v, tries, now, e.cfg.MaxAttempts, e.cfg.BusyBudget, c.Employees)
		if !next.Retry {
			e.giveUp(ctx, log, run, epoch, c, token, next, tries, v.Outcome, fail, spawn)
			return
		}
		log.InfoContext(ctx, "chunk attempt failed, retrying", "attempts", tries.Failed, "turned_away", tries.Turned,
			"outcome", v.Outcome, "code", callCode(err))
		if !sleepBackoff(ctx, e.cfg.RetryBaseDelay, e.cfg.RetryMaxDelay, next.Backoff) {
			return
		}
		if lease, err = e.workers.Acquire(ctx, run.ID, run.TotalEmployees); err != nil {
			return
		}
	}
}

// giveUp ends a chunk that will not be retried as next says: split in two (whose
// halves are spawned), failed for good, or left to whoever superseded it.
func (e *Engine) giveUp(ctx context.Context, log *slog.Logger, run store.Run, epoch int64, c store.Chunk, token int64,
	next nextStep, tries chunkTries, outcome domain.Outcome, fail context.CancelCauseFunc, spawn func(store.Chunk) bool) {
	if next.Split {
		var halves []store.Chunk
		err := e.waitOutDB(ctx, log, "splitting a chunk", func(ctx context.Context) error {
			var err error
			halves, _, err = e.ledger.SplitChunk(ctx, store.SplitChunkParams{RunLease: store.RunLease{RunID: run.ID, Epoch: epoch},
				Index: c.Index, Token: token, Reason: next.Reason, WorkerDied: next.WorkerDied})
			return err
		})
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			fail(errLeaseLost)
			return
		case errors.Is(err, store.ErrNotSplittable): // fewer employees than planned: fail it whole
			next.FailChunk = true
		case err != nil:
			if failure := asRunFailure(fmt.Sprintf("splitting chunk %d", c.Index), err); failure != nil {
				fail(failure)
			}
			return
		default:
			e.chunkEnded(ctx, run, c.Index)
			if len(halves) == 2 {
				log.WarnContext(ctx, "chunk split", "employees", c.Employees, "attempts", tries.Failed,
					"outcome", outcome, "worker_died", next.WorkerDied, "halves", []int{halves[0].Index, halves[1].Index},
					"half_employees", []int{halves[0].Employees, halves[1].Employees})
			}
			for _, h := range halves {
				if !spawn(h) {
					return
				}
			}
			return
		}
	}
	if next.FailChunk {
		err := e.waitOutDB(ctx, log, "recording a chunk failure", func(ctx context.Context) error {
			_, err := e.ledger.FailChunk(ctx, store.FailChunkParams{RunLease: store.RunLease{RunID: run.ID, Epoch: epoch},
				Index: c.Index, Token: token, Failure: store.ChunkFailure{Error: next.Reason, WorkerDied: next.WorkerDied}})
			return err
		})
		if errors.Is(err, store.ErrLeaseLost) {
			fail(errLeaseLost)
			return
		}
		if err != nil {
			log.WarnContext(ctx, "recording chunk failure", "error", err.Error())
		}
		log.WarnContext(ctx, "chunk failed", "employees", c.Employees, "attempts", tries.Failed, "turned_away", tries.Turned,
			"outcome", outcome, "worker_died", next.WorkerDied)
	}
	e.chunkEnded(ctx, run, c.Index)
}

// endAttempt records how an attempt ended, waiting out database faults while the
// run goes on; the record is for the operator, so a failure is only logged.
func (e *Engine) endAttempt(ctx context.Context, log *slog.Logger, runID int64, index, attempt int, outcome domain.Outcome, text string) {
	err := e.waitOutDB(ctx, log, "recording an attempt", func(ctx context.Context) error {
		return e.ledger.EndAttempt(ctx, store.EndAttemptParams{RunID: runID, Index: index, Attempt: attempt, Outcome: outcome, Error: text})
	})
	if err != nil && ctx.Err() == nil {
		log.WarnContext(ctx, "recording an attempt", "attempt", attempt, "error", err.Error())
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

// finish decides the run's end (docs/lifecycle.md#how-a-run-ends) and records it under the lease of
// epoch, waiting out database faults while ctx (the lease held) lasts. A cancel
// stored by any replica ends the run cancelled, whatever the chunks did.
func (e *Engine) finish(ctx context.Context, run store.Run, epoch int64, cause error) {
	log := e.logger.With("consolidation_id", run.ID, "closing_id", run.ClosingID)
	f := runFacts{Cancelled: errors.Is(cause, errCancelled), DeadlinePassed: errors.Is(cause, context.DeadlineExceeded)}
	if failure := (*runFailure)(nil); errors.As(cause, &failure) {
		f.Failure = failure.Text
	}
	if !f.Cancelled && !f.DeadlinePassed && f.Failure == "" {
		step, latest, totals := "reading the run", store.Run{}, store.ControlTotals{}
		err := e.waitOutDB(ctx, log, step, func(ctx context.Context) error {
			var err error
			latest, err = e.ledger.GetRun(ctx, run.ID)
			return err
		})
		if err == nil && !latest.CancelRequested {
			step = "checking control totals"
			err = e.waitOutDB(ctx, log, step, func(ctx context.Context) error {
				var err error
				totals, err = e.ledger.CheckControlTotals(ctx, run.ID)
				return err
			})
		}
		var killers []store.FailedEmployee
		if err == nil && !latest.CancelRequested && latest.EmployeesWorkerDied > 0 {
			step = "listing employees workers died on"
			err = e.waitOutDB(ctx, log, step, func(ctx context.Context) error {
				var err error
				killers, err = e.ledger.FailedEmployees(ctx, run.ID, maxKillersNamed, true)
				return err
			})
		}
		switch failure := asRunFailure(step, err); {
		case failure != nil:
			f.Failure = failure.Text
		case err != nil:
			log.ErrorContext(ctx, "finishing run failed; it is left for a resume", "step", step, "error", err.Error())
			return
		case latest.CancelRequested: // through another replica, say
			f.Cancelled = true
		default:
			f.Employees, f.EmployeesDone = latest.TotalEmployees, latest.EmployeesDone
			f.WorkerKillersTotal, f.Totals = latest.EmployeesWorkerDied, totals
			for _, k := range killers {
				f.WorkerKillers = append(f.WorkerKillers, k.EmployeeID)
			}
		}
	}
	o := decideRunEnd(f)
	if f.Failure != "" {
		log.ErrorContext(ctx, "run failed on a permanent database error", "error", f.Failure)
	}
	// Whether this call recorded the end or found it recorded, the ledger says:
	// afterEnd reads it.
	err := e.waitOutDB(ctx, log, "finishing the run", func(ctx context.Context) error {
		_, err := e.ledger.FinishRun(ctx, store.RunLease{RunID: run.ID, Epoch: epoch}, o)
		return err
	})
	if failure := asRunFailure("finishing the run", err); failure != nil {
		// Finishing can never succeed: end the run in error without its last steps.
		o = store.RunEnd{Estado: domain.EstadoError, Error: failure.Text}
		log.ErrorContext(ctx, "run failed on a permanent database error", "error", failure.Text)
		err = e.waitOutDB(ctx, log, "aborting the run", func(ctx context.Context) error {
			_, err := e.ledger.AbortRun(ctx, store.RunLease{RunID: run.ID, Epoch: epoch}, failure.Text)
			return err
		})
	}
	switch {
	case err == nil:
		// A finished run's reading is the ledger's: its watchers get it now, not
		// after the steps below (docs/architecture.md, "The end of a run").
		e.notify(run.ID)
	case errors.Is(err, store.ErrCancelRequested): // stored while the end was being decided
		e.finish(ctx, run, epoch, errCancelled)
		return
	case errors.Is(err, store.ErrChunksOpen):
		log.WarnContext(ctx, "run still has unfinished chunks; it is left to be driven again")
		return
	case errors.Is(err, store.ErrLeaseLost):
		log.WarnContext(ctx, "run lease lost before the end; the replica holding it finishes the run")
	case err != nil && ctx.Err() != nil:
		// Stopping, or the lease ended meanwhile: the end may have committed all
		// the same (the heartbeat finds a run that has ended and stops the driver),
		// so the ledger, not this error, says whether it ended.
		log.InfoContext(ctx, "run's end interrupted; the ledger says whether it was recorded", "cause", context.Cause(ctx).Error())
	case err != nil:
		log.ErrorContext(ctx, "finishing run failed; it is left for a resume", "error", err.Error())
	}
	if errors.Is(context.Cause(ctx), errEngineStopped) {
		return // another replica's reconciler, or this one's after a restart, does the rest
	}
	// Whoever recorded the end (this driver, or another replica), the steps after
	// it run once: here if the ledger says the run ended and nobody else is doing
	// them, else by a reconciler.
	e.afterEnd(ctx, run.ID)
}
