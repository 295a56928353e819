// Package chunk consolidates one chunk of a run: it reads the chunk's sources,
// applies the rules and commits the rows together with the chunk's ledger entry,
// fenced by the attempt token the coordinator handed out.
package chunk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/redact"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/telemetry"
)

// Config configures a Processor.
type Config struct {
	// Name identifies this worker in the ledger (default: "worker").
	Name string
	// SoftTimeout bounds one chunk's processing on the worker; past it the chunk is
	// abandoned and reported as timed out (default: DefaultSoftTimeout, 300s).
	SoftTimeout time.Duration
	// Faults injects delays for fault tests (nil: none).
	Faults *Faults
}

// Slot takes one of the worker's chunk slots for a chunk of run runID, a run of
// size employees (the smallest run waiting is served first), waiting a short
// while at most: it returns ErrBusy when none freed meanwhile, or ctx's error;
// release gives the slot back.
type Slot func(ctx context.Context, runID int64, size int) (release func(), err error)

// ErrBusy is Process's answer when its Slot had none free.
var ErrBusy = errors.New("worker is at its in-flight limit")

// DefaultSoftTimeout is Config.SoftTimeout's default: the old Celery design's soft limit.
const DefaultSoftTimeout = 300 * time.Second

// Processor consolidates chunks.
type Processor struct {
	logger *slog.Logger
	cfg    Config
	pool   *pgxpool.Pool

	chunks   metric.Int64Counter
	rows     metric.Int64Counter
	duration metric.Float64Histogram
}

// NewProcessor builds a Processor.
func NewProcessor(logger *slog.Logger, cfg Config, pool *pgxpool.Pool) (*Processor, error) {
	cfg.Name = cmp.Or(cfg.Name, "worker")
	cfg.SoftTimeout = cmp.Or(cfg.SoftTimeout, DefaultSoftTimeout)
	if pool == nil {
		return nil, errors.New("chunk processor needs a database pool")
	}
	meter := otel.Meter("consolidation/worker")
	p := &Processor{logger: logger, cfg: cfg, pool: pool}
	var err error
	if p.chunks, err = meter.Int64Counter("consolidation_worker_chunks", metric.WithDescription("Chunks processed, by outcome")); err != nil {
		return nil, err
	}
	if p.rows, err = meter.Int64Counter("consolidation_worker_rows_written", metric.WithDescription("Result rows written")); err != nil {
		return nil, err
	}
	if p.duration, err = meter.Float64Histogram("consolidation_worker_chunk_seconds", metric.WithUnit("s"),
		metric.WithDescription("Time to consolidate and commit one chunk"),
		metric.WithExplicitBucketBoundaries(telemetry.ChunkSecondsBuckets...)); err != nil {
		return nil, err
	}
	return p, nil
}

// Request names the chunk to process and the attempt it belongs to.
type Request struct {
	RunID     int64
	ClosingID int64
	Index     int
	Token     int64
}

// Summary is what a processed chunk reports.
type Summary struct {
	store.WriteSummary
	Duration   time.Duration
	CPU        time.Duration
	PeakRSS    int64
	FromLedger bool
	Worker     string
}

// Process consolidates a chunk and commits it if req.Token is still current.
// Only a call with the current attempt's token, for a chunk not yet committed,
// takes one of the worker's slots (slot; nil: no limit), so calls with a stale or
// forged token never push real chunks into ErrBusy.
//
// Errors: store.ErrStaleAttempt when it is not, ErrBusy when slot has none free
// (nothing was done, nothing is counted or logged), *DataError for bad data,
// *DatabaseError for an error PostgreSQL reported (worth a retry only when its
// SQLSTATE is transient); other errors are worth a retry.
func (p *Processor) Process(ctx context.Context, req Request, slot Slot) (Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.SoftTimeout)
	defer cancel()
	// Lock the goroutine to its thread so the thread's CPU time is this chunk's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, cpuStart := time.Now(), telemetry.ThreadCPU()

	sum, err := p.process(ctx, req, slot, start, cpuStart)
	if errors.Is(err, ErrBusy) {
		return Summary{}, err
	}
	err = typed(err)
	outcome := outcomeOf(sum, err)
	p.chunks.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", string(outcome))))
	p.duration.Record(ctx, time.Since(start).Seconds())
	if err != nil {
		p.logger.WarnContext(ctx, "chunk not committed", "consolidation_id", req.RunID, "chunk", req.Index,
			"outcome", outcome, "error", redact.Error(err))
		return Summary{}, err
	}
	p.rows.Add(ctx, int64(sum.Records))
	p.logger.InfoContext(ctx, "chunk committed", "consolidation_id", req.RunID, "closing_id", req.ClosingID,
		"chunk", req.Index, "employees", sum.Employees, "records", sum.Records, "from_ledger", sum.FromLedger,
		"duration_ms", sum.Duration.Milliseconds())
	return sum, nil
}

func (p *Processor) process(ctx context.Context, req Request, slot Slot, start time.Time, cpuStart time.Duration) (Summary, error) {
	a, err := store.GetAssignment(ctx, p.pool, req.RunID, req.Index)
	if err != nil {
		return Summary{}, err
	}
	if a.Closing.ID != req.ClosingID {
		return Summary{}, &DataError{Err: fmt.Errorf("chunk %d of consolidation %d belongs to closing %d, not %d",
			req.Index, req.RunID, a.Closing.ID, req.ClosingID)}
	}
	// The token first: a caller without the current attempt's token learns
	// nothing, not even a succeeded chunk's sums.
	if a.Token != req.Token {
		return Summary{}, store.ErrStaleAttempt
	}
	if a.Chunk.Status == domain.ChunkSucceeded {
		return p.fromLedger(a.Chunk), nil // this attempt committed already: a repeated delivery
	}
	if slot != nil {
		release, err := slot(ctx, req.RunID, a.RunEmployees)
		if err != nil {
			return Summary{}, err
		}
		defer release()
	}
	readStart := time.Now()
	src, err := store.ReadChunk(ctx, p.pool, a.Closing, a.Chunk.FirstID, a.Chunk.LastID)
	if err != nil {
		var re *store.RUTError
		if errors.As(err, &re) {
			return Summary{}, &DataError{Err: err}
		}
		return Summary{}, err
	}
	if p.cfg.Faults.killsOn(src.Employees) {
		p.logger.WarnContext(ctx, "fault injection: killing this worker", "consolidation_id", req.RunID, "chunk", req.Index)
		die()
	}
	recs := make([]rules.Consolidated, 0, len(src.Employees))
	for _, s := range src.Employees {
		rec, err := rules.Consolidate(s, src.Month)
		if err != nil {
			return Summary{}, &DataError{Err: err}
		}
		recs = append(recs, rec)
	}
	if hold := p.cfg.Faults.holdBeforeCommit(req.Index); hold > 0 {
		// A worker that stalls (a long pause, a partition) and does not notice its
		// call was abandoned: it sleeps through the cancel, then really tries to
		// commit. Fencing must refuse it.
		time.Sleep(hold)
		ctx = context.WithoutCancel(ctx)
	}
	writeStart := time.Now()
	stats := store.ChunkStats{
		Worker:          p.cfg.Name,
		DurationSeconds: time.Since(start).Seconds(),
		CPUSeconds:      (telemetry.ThreadCPU() - cpuStart).Seconds(),
		PeakRSSBytes:    telemetry.PeakRSSBytes(),
	}
	var inTx func()
	if hold := p.cfg.Faults.holdInCommit(req.Index); hold > 0 {
		inTx = func() { time.Sleep(hold) } // a transaction left open: its session may die meanwhile
	}
	ws, fromLedger, err := store.CommitChunk(ctx, p.pool, req.RunID, req.Index, req.Token, req.ClosingID, recs, stats, inTx)
	if errors.Is(err, store.ErrStaleAttempt) {
		if rerr := store.RecordRefusedCommit(context.WithoutCancel(ctx), p.pool, req.RunID, req.Index, req.Token); rerr != nil {
			p.logger.WarnContext(ctx, "recording refused commit", "error", rerr.Error())
		}
	}
	if err != nil {
		return Summary{}, err
	}
	if hold := p.cfg.Faults.holdAfterCommit(req.Index); hold > 0 {
		time.Sleep(hold) // committed, but the answer is late (or never comes: the worker dies)
	}
	p.logger.DebugContext(ctx, "chunk timings", "consolidation_id", req.RunID, "chunk", req.Index,
		"assign_ms", readStart.Sub(start).Milliseconds(), "read_ms", writeStart.Sub(readStart).Milliseconds(),
		"write_ms", time.Since(writeStart).Milliseconds())
	if fromLedger {
		c, err := store.GetChunk(ctx, p.pool, req.RunID, req.Index)
		if err != nil {
			return Summary{}, err
		}
		return p.fromLedger(c), nil
	}
	return Summary{
		WriteSummary: ws,
		Duration:     time.Since(start),
		CPU:          telemetry.ThreadCPU() - cpuStart,
		PeakRSS:      telemetry.PeakRSSBytes(),
		Worker:       p.cfg.Name,
	}, nil
}

func (p *Processor) fromLedger(c store.Chunk) Summary {
	return Summary{
		WriteSummary: store.WriteSummary{Employees: c.Employees, Records: c.Records, TotalHaberes: c.TotalHaberes,
			TotalDescuentos: c.TotalDescuentos, LiquidoPagar: c.LiquidoPagar},
		Duration:   time.Duration(c.DurationSeconds * float64(time.Second)),
		CPU:        time.Duration(c.CPUSeconds * float64(time.Second)),
		PeakRSS:    c.PeakRSSBytes,
		FromLedger: true,
		Worker:     c.Worker,
	}
}

// outcomeOf names how a chunk's processing ended, in the ledger's words.
func outcomeOf(sum Summary, err error) domain.Outcome {
	var de *DataError
	switch {
	case err == nil && sum.FromLedger:
		return domain.OutcomeFromLedger
	case err == nil:
		return domain.OutcomeCommitted
	case errors.Is(err, store.ErrStaleAttempt):
		return domain.OutcomeStale
	case errors.As(err, &de):
		return domain.OutcomeDataError
	default:
		return domain.OutcomeError
	}
}
