package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// drive takes a run from its ledger to its end: it holds the run's advisory lock
// (so one coordinator drives it), clears the closing's previous results, dispatches
// every unfinished chunk, and finishes the run. Called again on a run half done (a
// restarted coordinator) it re-dispatches only what is not finished.
func (e *Engine) drive(ctx context.Context, runID int64) {
	// Setting up must not be cut short by a cancel: a cancelled run still has to
	// be finished, and only its driver may finish it.
	setup := context.WithoutCancel(ctx)
	conn, err := e.pool.Acquire(setup)
	if err != nil {
		e.logger.WarnContext(ctx, "driving run: no database connection", "consolidation_id", runID, "error", err.Error())
		return
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(setup, "SELECT pg_try_advisory_lock($1)", lockKey(runID)).Scan(&locked); err != nil || !locked {
		return // another coordinator drives it
	}
	defer func() {
		_, _ = conn.Exec(setup, "SELECT pg_advisory_unlock($1)", lockKey(runID))
	}()

	run, err := store.GetRun(setup, e.pool, runID)
	if err != nil || run.Finished() {
		return
	}
	ctx, cancelDeadline := context.WithDeadlineCause(ctx, run.Deadline, context.DeadlineExceeded)
	defer cancelDeadline()
	log := e.logger.With("consolidation_id", runID, "closing_id", run.ClosingID)
	if run.CancelRequested || errors.Is(context.Cause(ctx), errCancelled) {
		e.finish(ctx, run, errCancelled)
		return
	}
	if errors.Is(context.Cause(ctx), errEngineStopped) {
		return
	}
	if run.Mode == domain.ModeFull {
		n, err := store.ClearPreviousResults(ctx, e.pool, run.ClosingID, runID)
		if err != nil {
			e.stopped(ctx, run, err)
			return
		}
		if n > 0 {
			log.InfoContext(ctx, "previous results cleared", "employees", n)
		}
	}
	if err := e.rebuildProgress(ctx, runID); err != nil {
		log.WarnContext(ctx, "rebuilding progress", "error", err.Error())
	}
	todo, err := store.Chunks(ctx, e.pool, runID, 0, domain.ChunkPending, domain.ChunkRunning)
	if err != nil {
		e.stopped(ctx, run, err)
		return
	}
	if len(todo) < run.TotalChunks {
		log.InfoContext(ctx, "resuming run", "chunks_left", len(todo), "chunks", run.TotalChunks)
	}

	var wg sync.WaitGroup
	for _, c := range todo {
		lease, err := e.dispatcher.Acquire(ctx)
		if err != nil {
			break // cancelled, timed out or stopping
		}
		wg.Go(func() { e.runChunk(ctx, run, c, lease) })
	}
	wg.Wait()
	e.stopped(ctx, run, nil)
}

// stopped ends the run according to why driving stopped: cancel, timeout, engine
// shutdown (leave it for a resume), or all chunks done.
func (e *Engine) stopped(ctx context.Context, run store.Run, err error) {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errEngineStopped):
		e.logger.Info("run left for resume", "consolidation_id", run.ID)
		return
	case errors.Is(cause, errCancelled), errors.Is(cause, context.DeadlineExceeded):
		e.finish(ctx, run, cause)
	case err != nil:
		e.logger.ErrorContext(ctx, "driving run failed; the reconciler will retry", "consolidation_id", run.ID, "error", err.Error())
	default:
		e.finish(ctx, run, nil)
	}
}

// runChunk dispatches one chunk until it commits, fails for good, or the run stops.
func (e *Engine) runChunk(ctx context.Context, run store.Run, c store.Chunk, lease *dispatch.Lease) {
	log := e.logger.With("consolidation_id", run.ID, "chunk", c.Index)
	for try := 1; ; try++ {
		token := rand.Int64N(1<<62) + 1
		attempt, ok, err := store.DispatchChunk(ctx, e.pool, run.ID, c.Index, token, lease.Worker())
		if err != nil || !ok {
			lease.Release(false)
			if err == nil {
				e.chunkEnded(ctx, run, c.Index) // finished meanwhile (by an earlier attempt)
			}
			return
		}
		callCtx, cancel := context.WithTimeout(ctx, e.cfg.ChunkHardTimeout)
		resp, err := lease.ProcessChunk(callCtx, &consolidationv1.ProcessChunkRequest{
			ConsolidationId: run.ID, ClosingId: run.ClosingID, ChunkIndex: int32(c.Index), AttemptToken: token,
		})
		cancel()
		if err == nil {
			lease.Release(false)
			e.count(ctx, domain.OutcomeCommitted)
			if resp.GetSummary().GetFromLedger() {
				_ = store.EndAttempt(ctx, e.pool, run.ID, c.Index, attempt, domain.OutcomeFromLedger, "")
			}
			e.chunkEnded(ctx, run, c.Index)
			return
		}
		st := status.Convert(err)
		if ctx.Err() != nil { // cancel, run timeout or shutdown: fencing stops any commit
			lease.Release(false)
			_ = store.EndAttempt(context.WithoutCancel(ctx), e.pool, run.ID, c.Index, attempt, domain.OutcomeAbandoned, context.Cause(ctx).Error())
			return
		}
		retryable := true
		outcome := domain.OutcomeError
		switch st.Code() {
		case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound:
			retryable, outcome = false, domain.OutcomeDataError
		case codes.Aborted:
			retryable, outcome = false, domain.OutcomeStale
		case codes.DeadlineExceeded:
			outcome = domain.OutcomeTimeout
		case codes.ResourceExhausted:
			outcome = domain.OutcomeBusy
		}
		e.count(ctx, outcome)
		lease.Release(retryable && outcome != domain.OutcomeBusy)
		_ = store.EndAttempt(ctx, e.pool, run.ID, c.Index, attempt, outcome, st.Message())
		// A worker may have died after its commit: the ledger knows.
		if ch, err := store.GetChunk(ctx, e.pool, run.ID, c.Index); err == nil && ch.Status == domain.ChunkSucceeded {
			e.chunkEnded(ctx, run, c.Index)
			return
		}
		if !retryable || try >= e.cfg.MaxAttempts {
			reason := st.Message()
			if retryable {
				reason = fmt.Sprintf("gave up after %d attempts: %s", try, st.Message())
			}
			if outcome != domain.OutcomeStale {
				if _, err := store.FailChunk(ctx, e.pool, run.ID, c.Index, token, reason); err != nil {
					log.WarnContext(ctx, "recording chunk failure", "error", err.Error())
				}
				log.WarnContext(ctx, "chunk failed", "attempts", try, "outcome", outcome)
			}
			e.chunkEnded(ctx, run, c.Index)
			return
		}
		log.InfoContext(ctx, "chunk attempt failed, retrying", "attempt", try, "outcome", outcome, "code", st.Code().String())
		if !sleepBackoff(ctx, e.cfg.RetryBaseDelay, e.cfg.RetryMaxDelay, try) {
			return
		}
		if lease, err = e.dispatcher.Acquire(ctx); err != nil {
			return
		}
	}
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

// chunkEnded records a finished chunk (succeeded or failed) in Redis, from the
// ledger's numbers; lost keys are rebuilt.
func (e *Engine) chunkEnded(ctx context.Context, run store.Run, index int) {
	c, err := store.GetChunk(ctx, e.pool, run.ID, index)
	if err != nil || (c.Status != domain.ChunkSucceeded && c.Status != domain.ChunkFailed) {
		return
	}
	employees, records := 0, 0
	if c.Status == domain.ChunkSucceeded {
		employees, records = c.Employees, c.Records
	}
	_, hadHash, err := e.progress.MarkDone(ctx, run.ID, index, employees, records, e.cfg.KeyTTL)
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
	return e.progress.Set(ctx, run.ID, "progress", e.progressFields(run, snap), e.cfg.KeyTTL)
}

// ledgerSnapshot computes a run's progress from the ledger, the source of truth.
func (e *Engine) ledgerSnapshot(ctx context.Context, runID int64) (store.Run, progress.Snapshot, []int, error) {
	run, err := store.GetRun(ctx, e.pool, runID)
	if err != nil {
		return run, progress.Snapshot{}, nil, err
	}
	ended, err := store.Chunks(ctx, e.pool, runID, 0, domain.ChunkSucceeded, domain.ChunkFailed)
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
	if err := e.progress.Reset(ctx, runID, done, e.progressFields(run, snap), e.cfg.KeyTTL); err != nil {
		return err
	}
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

// finish decides the run's end and records it (SPEC section 6).
func (e *Engine) finish(ctx context.Context, run store.Run, cause error) {
	ctx = context.WithoutCancel(ctx)
	var o store.RunEnd
	switch {
	case errors.Is(cause, errCancelled):
		o = store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true}
	case errors.Is(cause, context.DeadlineExceeded):
		o = store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true}
	default:
		latest, err := store.GetRun(ctx, e.pool, run.ID)
		if err != nil {
			e.logger.ErrorContext(ctx, "finishing run", "consolidation_id", run.ID, "error", err.Error())
			return
		}
		totals, err := store.CheckControlTotals(ctx, e.pool, run.ID)
		if err != nil {
			e.logger.ErrorContext(ctx, "finishing run", "consolidation_id", run.ID, "error", err.Error())
			return
		}
		o.Totals, o.TotalsVerified = totals.Written, totals.Agree()
		ok, k := latest.ChunksSucceeded, latest.TotalChunks
		switch {
		case !totals.Agree():
			o.Estado, o.RemoveRows = domain.EstadoError, true
			o.Error = "control totals disagree: the ledger and the written rows do not add up to the same amounts"
		case ok == k:
			o.Estado = domain.EstadoConsolidados
		case 2*ok >= k:
			o.Estado = domain.EstadoParcial
			o.Error = fmt.Sprintf("%d of %d chunks failed", k-ok, k)
		default:
			o.Estado, o.RemoveRows = domain.EstadoError, true
			o.Error = fmt.Sprintf("%d of %d chunks failed", k-ok, k)
		}
	}
	finished, err := store.FinishRun(ctx, e.pool, run.ID, o)
	if err != nil {
		e.logger.ErrorContext(ctx, "finishing run", "consolidation_id", run.ID, "error", err.Error())
		return
	}
	if !finished {
		return
	}
	e.notify(run.ID)
	e.runsFinished.Add(ctx, 1, metric.WithAttributes(attribute.String("estado", string(o.Estado))))
	if err := e.rebuildProgress(ctx, run.ID); err != nil {
		e.logger.WarnContext(ctx, "final progress", "consolidation_id", run.ID, "error", err.Error())
	}
	if m, err := store.GetMetrics(ctx, e.pool, run.ClosingID); err == nil {
		_ = e.progress.Set(ctx, run.ID, "metrics", map[string]string{
			"throughput_empleados_sec": strconv.FormatFloat(m.ThroughputEmpleadosSec, 'f', 1, 64),
			"throughput_registros_sec": strconv.FormatFloat(m.ThroughputRegistrosSec, 'f', 1, 64),
			"memoria_pico_mb":          strconv.FormatFloat(m.MemoriaPicoMB, 'f', 1, 64),
			"cpu_promedio_percent":     strconv.FormatFloat(m.CPUPromedioPercent, 'f', 1, 64),
			"tiempo_total":             strconv.FormatFloat(m.TiempoTotal, 'f', 3, 64),
			"workers_utilizados":       strconv.Itoa(m.WorkersUtilizados),
		}, e.cfg.KeyTTL)
	}
	e.logger.InfoContext(ctx, "consolidation finished", "consolidation_id", run.ID, "closing_id", run.ClosingID,
		"estado", o.Estado)
}
