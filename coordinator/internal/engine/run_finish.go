package engine

// The end of a run: recorded once in the ledger by the driver that holds its
// lease (docs/lifecycle.md); the steps after it are run_after_end.go's.

import (
	"context"
	"errors"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

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
				totals, err = e.ledger.CheckControlTotals(ctx, run.ID, run.TotalEmployees >= store.SplitControlTotalsFrom)
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
	// A finished run's reading is the ledger's: its watchers get it now, not
	// after the steps below (docs/architecture.md, "The end of a run"). Also when
	// the end's answer was lost (a heartbeat that saw the run ended stopped this
	// driver first): the watch hub's reading says whether it ended.
	e.notify(run.ID)
	if errors.Is(context.Cause(ctx), errEngineStopped) {
		return // another replica's reconciler, or this one's after a restart, does the rest
	}
	// Whoever recorded the end (this driver, or another replica), the steps after
	// it run once: here if the ledger says the run ended and nobody else is doing
	// them, else by a reconciler.
	e.afterEnd(ctx, run.ID)
}
