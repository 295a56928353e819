package engine

import (
	"context"
	"time"

	"github.com/nominacl/consolidation/pkg/store"
)

// progressTickEvery is how often a driven run's progress (percent, elapsed, ETA)
// is rewritten while its chunks run, besides at each chunk's end: readers of the
// closing's keys (the payroll application's Django cache among them) see a long
// chunk's run move, not stand still until it ends.
const progressTickEvery = time.Second

// tickProgress refreshes run's progress every progressTickEvery until ctx ends or
// the returned stop is called; stop returns once the ticker has stopped, so no
// refresh lands after the run's end is recorded.
func (e *Engine) tickProgress(ctx context.Context, run store.Run) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressTickEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := e.refreshProgress(ctx, run); err != nil && ctx.Err() == nil {
					e.logger.WarnContext(ctx, "refreshing progress in redis", "consolidation_id", run.ID, "error", err.Error())
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
