package engine

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/otel/trace"

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
	// The lease is taken on a context the engine's stop does not cut short: a stop
	// arriving while the statement runs could otherwise leave the lease taken in
	// the ledger but unknown here, held by nobody until it expires. Taken while the
	// engine stopped, it is given back at once (docs/lifecycle.md#more-than-one-coordinator).
	acquireCtx, cancelAcquire := context.WithTimeout(context.WithoutCancel(held), e.cfg.LeaseTTL)
	epoch, ok, err := e.ledger.AcquireLease(acquireCtx, runID, e.cfg.Replica, e.cfg.LeaseTTL)
	cancelAcquire()
	if err != nil {
		if held.Err() == nil {
			e.logger.WarnContext(ctx, "driving run: acquiring its lease", "consolidation_id", runID, "error", err.Error())
		}
		return
	}
	if ok && held.Err() != nil {
		e.releaseLease(ctx, runID, epoch)
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
		slot, err := e.workers.Acquire(ctx, run.ID, run.TotalEmployees)
		if err != nil {
			return false // cancelled, timed out, failed or stopping
		}
		wg.Go(func() { e.runChunk(ctx, run, epoch, c, slot, fail, spawn) })
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
