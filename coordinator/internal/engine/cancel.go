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
		return Report{}, runNotFound(runID)
	}
	if err != nil {
		return Report{}, err
	}
	if run.Finished() {
		md := ids(run.ClosingID, runID)
		md["estado"] = string(run.Estado)
		return Report{}, failedPrecondition(ReasonRunEnded, md,
			PreconditionViolation{Type: ViolationEstado, Subject: subject("consolidation_run", runID)},
			"consolidation %d has already ended in estado %q", runID, run.Estado)
	}
	if _, err := e.ledger.RequestCancel(ctx, runID, cancelledBy); err != nil {
		return Report{}, err
	}
	// Driven here: stop it. Driven by another replica: its heartbeat finds the
	// stored cancel and finishes the run as cancelled. Driven by nobody (its lease
	// expired): drive it here, which finishes it as cancelled.
	a := e.launch(runID, run.TotalEmployees)
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

// waitEnded waits (up to ctx) until a run has ended, whichever replica ends it,
// through the run's feed in the watch hub (woken by a change here, or reading
// every WatchEvery). A reading that failed is tried again a WatchEvery later.
func (e *Engine) waitEnded(ctx context.Context, runID int64) {
	for {
		w := e.watch.subscribe(runID)
		u, ok := nextFinal(ctx, w)
		e.watch.unsubscribe(w)
		if !ok || u.err == nil {
			return
		}
		t := time.NewTimer(e.cfg.WatchEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// nextFinal waits for a watcher's final reading; ok is false when ctx ended first.
func nextFinal(ctx context.Context, w *watcher) (*watchUpdate, bool) {
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case <-w.ready:
			if u := w.take(); u != nil && u.final() {
				return u, true
			}
		}
	}
}
