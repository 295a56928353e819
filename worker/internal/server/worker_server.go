// Package server is the worker's gRPC edge: WorkerService.ProcessChunk.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/slots"
	"github.com/nominacl/consolidation/pkg/store"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
	"github.com/nominacl/consolidation/worker/internal/chunk"
)

// WorkerServer implements WorkerService.
type WorkerServer struct {
	consolidationv1.UnimplementedWorkerServiceServer
	logger    *slog.Logger
	processor *chunk.Processor
	slots     *slots.BySize
	slotWait  time.Duration
}

// DefaultMaxInFlight is how many chunks a worker processes at once unless
// WORKER_MAX_IN_FLIGHT says otherwise: config.DefaultWorkerMaxInFlight, the value
// the coordinator's dispatcher also defaults to.
const DefaultMaxInFlight = config.DefaultWorkerMaxInFlight

// SlotWait is how long a call waits at most for one of the worker's chunk slots
// when all are taken, before it is answered RESOURCE_EXHAUSTED (never more than
// half the time the call has left). Several coordinator replicas share the
// workers, each bounding only its own calls; a call waiting here is served by
// size, the smallest run's first, whichever replica sent it (docs/architecture.md,
// "Many runs at once").
const SlotWait = 2 * time.Second

// NewWorkerServer builds the server; maxInFlight bounds the chunks it processes at
// once (a further call waits up to SlotWait for a slot, then gets
// RESOURCE_EXHAUSTED and the coordinator tries again; 0: DefaultMaxInFlight).
func NewWorkerServer(logger *slog.Logger, processor *chunk.Processor, maxInFlight int) *WorkerServer {
	maxInFlight = cmp.Or(maxInFlight, DefaultMaxInFlight)
	return &WorkerServer{logger: logger, processor: processor, slots: slots.New(max(1, maxInFlight)), slotWait: SlotWait}
}

// takeSlot is the processor's chunk.Slot: one of the maxInFlight slots, taken
// only by a call whose attempt token the processor has checked. A freed slot goes
// to the smallest run's call waiting (size: the run's employees), of one run to
// the call that asked first.
func (s *WorkerServer) takeSlot(ctx context.Context, runID int64, size int) (func(), error) {
	wait := s.slotWait
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline)/2)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, max(wait, 0), chunk.ErrBusy)
	defer cancel()
	if err := s.slots.Acquire(wctx, runID, size); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, chunk.ErrBusy
	}
	// From here this worker holds the chunk: if it dies now, the chunk may be
	// the cause. A call still waiting for a slot when the worker died was not held
	// (docs/lifecycle.md#how-a-run-ends).
	if err := grpcx.MarkHeld(ctx); err != nil {
		s.logger.WarnContext(ctx, "marking the call held", "consolidation_id", runID, "error", err.Error())
	}
	return s.slots.Release, nil
}

// ProcessChunk validates the request, runs the chunk and maps the outcome to a status.
func (s *WorkerServer) ProcessChunk(ctx context.Context, req *consolidationv1.ProcessChunkRequest) (*consolidationv1.ProcessChunkResponse, error) {
	// Whatever this returns was answered: a call that breaks without the mark is a
	// worker that died holding the chunk.
	if err := grpcx.MarkAnswered(ctx); err != nil {
		s.logger.WarnContext(ctx, "marking the call answered", "error", err.Error())
	}
	switch {
	case req.GetConsolidationId() <= 0:
		return nil, status.Error(codes.InvalidArgument, "consolidation_id must be > 0")
	case req.GetClosingId() <= 0:
		return nil, status.Error(codes.InvalidArgument, "closing_id must be > 0")
	case req.GetChunkIndex() < 0:
		return nil, status.Error(codes.InvalidArgument, "chunk_index must be ≥ 0")
	case req.GetAttemptToken() == 0:
		return nil, status.Error(codes.InvalidArgument, "attempt_token is required")
	}
	creq := chunk.Request{
		RunID: req.GetConsolidationId(), ClosingID: req.GetClosingId(),
		Index: int(req.GetChunkIndex()), Token: req.GetAttemptToken(),
	}
	sum, err := s.processor.Process(ctx, creq, s.takeSlot)
	if err != nil {
		return nil, toStatus(ctx, creq, err)
	}
	return &consolidationv1.ProcessChunkResponse{Summary: &consolidationv1.ChunkSummary{
		ChunkIndex:           req.GetChunkIndex(),
		Employees:            int32(sum.Employees),
		RecordsCreated:       int32(sum.Records),
		Duration:             durationpb.New(sum.Duration),
		PeakRssBytes:         sum.PeakRSS,
		TotalHaberesCents:    int64(sum.TotalHaberes),
		TotalDescuentosCents: int64(sum.TotalDescuentos),
		LiquidoPagarCents:    int64(sum.LiquidoPagar),
		FromLedger:           sum.FromLedger,
		CpuTime:              durationpb.New(sum.CPU),
		Worker:               sum.Worker,
	}}, nil
}

// toStatus maps processing errors to codes the coordinator acts on: ABORTED (stale
// attempt: never retried), FAILED_PRECONDITION (bad data, or a permanent database
// error: never retried), and UNAVAILABLE / DEADLINE_EXCEEDED / CANCELED (retried).
// What leaves the worker is a fixed message with ids, plus, where they say what
// to fix, the names of a column, table or constraint and a SQLSTATE: never SQL,
// a host name, a RUT or an amount. The processor logs the whole error.
func toStatus(ctx context.Context, req chunk.Request, err error) error {
	var de *chunk.DataError
	var dbErr *chunk.DatabaseError
	var overflow *rules.OverflowError
	var badRUT *store.RUTError
	which := fmt.Sprintf("chunk %d of consolidation %d", req.Index, req.RunID)
	switch {
	case errors.Is(err, chunk.ErrBusy):
		return status.Error(codes.ResourceExhausted, "worker is at its in-flight limit")
	case errors.Is(err, store.ErrStaleAttempt):
		return status.Error(codes.Aborted, which+": attempt token is not the current one")
	case errors.As(err, &overflow): // ids and a column name only
		return status.Error(codes.FailedPrecondition, overflow.Error())
	case errors.As(err, &badRUT): // a table name and a row id only
		return status.Error(codes.FailedPrecondition, badRUT.Error())
	case errors.As(err, &de):
		return status.Error(codes.FailedPrecondition, which+": its data cannot be consolidated (details in the worker's log)")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, which+" not found")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "chunk exceeded its time limit")
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return status.Error(codes.Canceled, "chunk cancelled")
	case errors.As(err, &dbErr):
		if pgErr, permanent := store.PermanentDBError(dbErr); permanent {
			if !store.DataSQLState(pgErr.Code) { // every chunk would meet it: not one employee's doing
				return grpcx.DatabaseRefused(store.DescribeDBError(pgErr), pgErr.Code)
			}
			return status.Error(codes.FailedPrecondition, store.DescribeDBError(pgErr))
		}
		return status.Errorf(codes.Unavailable, "database error %s", dbErr.Code)
	default:
		return status.Error(codes.Unavailable, which+" failed (details in the worker's log)")
	}
}
