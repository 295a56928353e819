package engine

import (
	"context"
	"errors"

	"github.com/nominacl/consolidation/pkg/store"
)

// Cancel stops a running run: attempt tokens are revoked at once (so no chunk can
// commit any more), in-flight calls are cancelled through their contexts, and the
// run's rows are removed. It waits (up to ctx) for the run to end.
func (e *Engine) Cancel(ctx context.Context, ref Ref) (Report, error) {
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
	if _, err := e.ledger.RequestCancel(ctx, runID); err != nil {
		return Report{}, err
	}
	// Driven here: stop it. Not driven here: drive it now, which finishes it as
	// cancelled (or, if another coordinator drives it, that one will).
	a := e.launch(runID)
	a.cancel(errCancelled)
	select {
	case <-a.done:
	case <-ctx.Done():
	}
	e.logger.InfoContext(ctx, "consolidation cancel requested", "consolidation_id", runID)
	return e.report(ctx, runID)
}
