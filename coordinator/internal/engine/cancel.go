package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nominacl/consolidation/pkg/store"
)

// Cancel stops a running run: attempt tokens are revoked at once (so no chunk can
// commit any more), in-flight calls are cancelled through their contexts, and the
// run's rows are removed, by whichever replica drives the run. It waits (up to ctx,
// and three lease lifetimes) for the run to end. cancelledBy, the caller's
// identity ("" without TLS), is stored on the run if it is the first cancel.
func (e *Engine) Cancel(ctx context.Context, ref Ref, cancelledBy string) (Report, error) {
	runID, err := e.Resolve(ctx, ref)
	if err != nil {
		return Report{}, err
	}
	run, err := e.ledger.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return Report{}, errorf(KindNotFound, "consolidation %d does not exist", runID)
	}
	if err != nil {
		return Report{}, err
	}
	if run.Finished() {
		return Report{}, errorf(KindFailedPrecondition, "consolidation %d has already ended in estado %q", runID, run.Estado)
	}
	if _, err := e.ledger.RequestCancel(ctx, runID, cancelledBy); err != nil {
		return Report{}, err
	}
	// Driven here: stop it. Driven by another replica: its heartbeat finds the
	// stored cancel and finishes the run as cancelled. Driven by nobody (its lease
	// expired): drive it here, which finishes it as cancelled.
	a := e.launch(runID)
	a.cancel(errCancelled)
	select {
	case <-a.done:
	case <-ctx.Done():
	}
	waitCtx, cancel := context.WithTimeout(ctx, 3*e.cfg.LeaseTTL) // the lease of a dead replica expires by then
	e.waitEnded(waitCtx, runID)
	cancel()
	e.logger.InfoContext(ctx, "consolidation cancel requested", "consolidation_id", runID)
	return e.report(ctx, runID)
}

// waitEnded waits (up to ctx) until a run has ended, whichever replica ends it:
// woken by a change here, or looking every WatchEvery.
func (e *Engine) waitEnded(ctx context.Context, runID int64) {
	for {
		changed := e.changes(runID)
		if run, err := e.ledger.GetRun(ctx, runID); err == nil && run.Finished() {
			return
		}
		t := time.NewTimer(e.cfg.WatchEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
