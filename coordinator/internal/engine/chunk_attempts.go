package engine

// One chunk of a run, driven to its end: dispatched to a worker under the
// run's lease, retried with backoff, split, or given up (docs/lifecycle.md).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// runChunk dispatches one chunk until it commits, fails for good, is split (its
// halves go to spawn), or the run stops. A permanent database error while
// dispatching stops the run: fail(its *runFailure).
func (e *Engine) runChunk(ctx context.Context, run store.Run, epoch int64, c store.Chunk, slot workerSlot,
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
				RunLease: store.RunLease{RunID: run.ID, Epoch: epoch}, Index: c.Index, Token: token, Worker: slot.Worker()})
			return err
		})
		if err != nil || !ok {
			slot.Release(false)
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
		callCtx, span := startChunkSpan(callCtx, run, c.Index, attempt, slot.Worker())
		res, err := slot.ProcessChunk(callCtx, dispatch.ChunkRequest{
			RunID: run.ID, ClosingID: run.ClosingID, Index: c.Index, Token: token,
		})
		cancel()
		v := classifyAttempt(res, err, context.Cause(ctx))
		endChunkSpan(span, v.Outcome)
		switch v.Outcome {
		case domain.OutcomeCommitted, domain.OutcomeFromLedger:
			slot.Release(false)
			e.count(ctx, domain.OutcomeCommitted) // the metric counts every success as committed
			if v.Outcome == domain.OutcomeFromLedger {
				e.endAttempt(ctx, log, run.ID, c.Index, attempt, domain.OutcomeFromLedger, "")
			}
			e.chunkEnded(ctx, run, c.Index)
			return
		case domain.OutcomeAbandoned:
			slot.Release(false)
			e.endAttempt(context.WithoutCancel(ctx), log, run.ID, c.Index, attempt, domain.OutcomeAbandoned, v.Text)
			return
		}
		e.count(ctx, v.Outcome)
		slot.Release(v.CoolDown)
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
		if slot, err = e.workers.Acquire(ctx, run.ID, run.TotalEmployees); err != nil {
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
