package engine

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/store"
)

// afterEndTimeout bounds the steps after a run's end on one replica.
const afterEndTimeout = 30 * time.Second

// afterEndBatch bounds the ended runs one reconciler pass finishes the steps of.
const afterEndBatch = 20

// afterEnd does the steps after a run's end once the ledger says it has ended
// (docs/architecture.md, "The end of a run"): the run's progress rebuilt from the
// ledger, the closing's metrics hash in Redis, then, once the ledger records them
// done, the end's log line and metrics and the watchers woken. Whichever replica
// sees the end does them: the driver that recorded it, or the reconciler when
// that driver was cancelled, lost its lease or died right after the commit. A
// claim (for LeaseTTL) keeps two replicas from doing them at once; the Redis
// steps may be repeated (they write the same keys), the log line and metrics
// come only from the replica whose mark recorded them done, so they are counted
// once. When a step fails (Redis unreachable, say) the claim is given up and the
// next reconciler pass tries again. It does nothing when the run has not ended,
// its steps are done, or another replica holds the claim.
func (e *Engine) afterEnd(ctx context.Context, runID int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterEndTimeout)
	defer cancel()
	log := e.logger.With("consolidation_id", runID)
	claimed, err := e.ledger.ClaimAfterEnd(ctx, runID, e.cfg.Replica, e.cfg.LeaseTTL)
	if err != nil {
		log.WarnContext(ctx, "claiming the steps after a run's end; the reconciler will retry", "error", err.Error())
		return
	}
	if !claimed {
		return
	}
	run, step, err := e.afterEndRedis(ctx, runID)
	if err != nil {
		log.WarnContext(ctx, step+"; the reconciler will retry", "error", err.Error())
		if _, err := e.ledger.EndAfterEnd(ctx, runID, e.cfg.Replica, false); err != nil {
			log.WarnContext(ctx, "giving up the claim on the steps after a run's end", "error", err.Error())
		}
		return
	}
	marked, err := e.ledger.EndAfterEnd(ctx, runID, e.cfg.Replica, true)
	if err != nil {
		log.WarnContext(ctx, "recording the steps after a run's end; the reconciler will retry", "error", err.Error())
		return
	}
	if !marked {
		return // another replica, whose claim this one outlived, recorded them
	}
	byEstado := metric.WithAttributes(attribute.String("estado", string(run.Estado)))
	e.runsFinished.Add(ctx, 1, byEstado)
	e.runSeconds.Record(ctx, run.FinishedAt.Sub(run.StartedAt).Seconds(), byEstado)
	e.logger.InfoContext(ctx, msgRunEnded, runSummary(run)...)
	e.notify(run.ID)
}

// afterEndRedis writes an ended run's final progress and its closing's metrics
// hash to Redis; on failure it names the step.
func (e *Engine) afterEndRedis(ctx context.Context, runID int64) (run store.Run, step string, err error) {
	if run, err = e.ledger.GetRun(ctx, runID); err != nil {
		return run, "reading an ended run", err
	}
	if err := e.rebuildProgress(ctx, runID); err != nil {
		return run, "final progress", err
	}
	m, err := e.ledger.GetMetrics(ctx, run.ClosingID)
	if err != nil {
		return run, "reading the closing's metrics", err
	}
	err = e.progress.PublishMetrics(ctx, e.progressRun(run), progress.Metrics{
		EmployeesPerSecond: m.ThroughputEmpleadosSec, RecordsPerSecond: m.ThroughputRegistrosSec,
		PeakMemoryMB: m.MemoriaPicoMB, CPUPercent: m.CPUPromedioPercent, TotalSeconds: m.TiempoTotal,
		Workers: m.WorkersUtilizados})
	if err != nil {
		return run, "the closing's metrics in redis", err
	}
	return run, "", nil
}

// finishEnded does the steps after the end of the ended runs whose steps nobody
// did or is doing (a driver cut short right after the end's commit, a replica that
// died): part of every reconciler pass. A run driven here (its driver past its
// wait for a slot) is left to its driver, which does them on the run's context
// (its trace) as soon as it has recorded or seen the end: the claim would not
// keep the two apart, both claiming as this replica. A driver that returns
// without doing them leaves the run to the next pass; one still waiting for a
// slot does not hold them up.
func (e *Engine) finishEnded(ctx context.Context) {
	ids, err := e.ledger.RunsAwaitingAfterEnd(ctx, afterEndBatch)
	if err != nil {
		if ctx.Err() == nil {
			e.logger.WarnContext(ctx, "reconcile: listing ended runs", "error", err.Error())
		}
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if e.isDriving(id) {
			continue
		}
		e.afterEnd(ctx, id)
	}
}
