package engine

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// runGauges are the runs this replica drives (holds the lease of), for the
// gauges of active runs, pending chunks and runs past their deadline. Each
// replica reports only its own runs, so a sum over the coordinators counts each
// run once.
type runGauges struct {
	mu   sync.Mutex
	runs map[int64]drivenRun
}

type drivenRun struct {
	pending  int // chunks pending or running in the ledger
	deadline time.Time
}

func newRunGauges() *runGauges { return &runGauges{runs: map[int64]drivenRun{}} }

// driving counts a run driven from now on, with no chunk pending until
// setPending says.
func (g *runGauges) driving(runID int64, deadline time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.runs[runID] = drivenRun{deadline: deadline}
}

// setPending sets how many chunks of a driven run are pending or running; a run
// not driven here is ignored.
func (g *runGauges) setPending(runID int64, pending int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r, ok := g.runs[runID]; ok {
		r.pending = max(pending, 0)
		g.runs[runID] = r
	}
}

// done stops counting a run: it ended, or this replica stopped driving it.
func (g *runGauges) done(runID int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.runs, runID)
}

// snapshot counts the runs driven, their chunks pending or running, and the runs
// still driven after their deadline at now.
func (g *runGauges) snapshot(now time.Time) (active, pending, pastDeadline int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.runs {
		active++
		pending += r.pending
		if now.After(r.deadline) {
			pastDeadline++
		}
	}
	return active, pending, pastDeadline
}

// observe registers the gauges on meter: consolidation_runs_active,
// consolidation_chunks_pending (the workers' autoscaling signal) and
// consolidation_runs_past_deadline.
func (g *runGauges) observe(meter metric.Meter) error {
	active, err := meter.Int64ObservableGauge("consolidation_runs_active",
		metric.WithDescription("Runs this coordinator drives"))
	if err != nil {
		return err
	}
	pending, err := meter.Int64ObservableGauge("consolidation_chunks_pending",
		metric.WithDescription("Chunks pending or running of the runs this coordinator drives"))
	if err != nil {
		return err
	}
	late, err := meter.Int64ObservableGauge("consolidation_runs_past_deadline",
		metric.WithDescription("Runs this coordinator still drives after their deadline (RUN_TIMEOUT)"))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		a, p, l := g.snapshot(time.Now())
		o.ObserveInt64(active, int64(a))
		o.ObserveInt64(pending, int64(p))
		o.ObserveInt64(late, int64(l))
		return nil
	}, active, pending, late)
	return err
}
