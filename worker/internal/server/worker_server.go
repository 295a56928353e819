// Package server is the worker's gRPC edge: WorkerService.ProcessChunk.
package server

import (
	"cmp"
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/store"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
	"github.com/nominacl/consolidation/worker/internal/chunk"
)

// WorkerServer implements WorkerService.
type WorkerServer struct {
	consolidationv1.UnimplementedWorkerServiceServer
	logger    *slog.Logger
	processor *chunk.Processor
	slots     chan struct{}
}

// DefaultMaxInFlight is how many chunks a worker processes at once unless
// WORKER_MAX_IN_FLIGHT says otherwise.
const DefaultMaxInFlight = 4

// NewWorkerServer builds the server; maxInFlight bounds the chunks it processes at
// once (a further call gets RESOURCE_EXHAUSTED and the coordinator tries elsewhere;
// 0: DefaultMaxInFlight).
func NewWorkerServer(logger *slog.Logger, processor *chunk.Processor, maxInFlight int) *WorkerServer {
	maxInFlight = cmp.Or(maxInFlight, DefaultMaxInFlight)
	return &WorkerServer{logger: logger, processor: processor, slots: make(chan struct{}, max(1, maxInFlight))}
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
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return nil, status.Error(codes.ResourceExhausted, "worker is at its in-flight limit")
	}
	sum, err := s.processor.Process(ctx, chunk.Request{
		RunID: req.GetConsolidationId(), ClosingID: req.GetClosingId(),
		Index: int(req.GetChunkIndex()), Token: req.GetAttemptToken(),
	})
	if err != nil {
		return nil, toStatus(ctx, err)
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
// error: never retried), and UNAVAILABLE / DEADLINE_EXCEEDED / INTERNAL (retried).
// Messages carry ids, SQLSTATEs and table and column names only.
func toStatus(ctx context.Context, err error) error {
	var de *chunk.DataError
	var dbErr *chunk.DatabaseError
	switch {
	case errors.Is(err, store.ErrStaleAttempt):
		return status.Error(codes.Aborted, err.Error())
	case errors.As(err, &de):
		return status.Error(codes.FailedPrecondition, de.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "chunk exceeded its time limit")
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return status.Error(codes.Canceled, "chunk cancelled")
	case errors.As(err, &dbErr):
		if pgErr, permanent := store.PermanentDBError(dbErr); permanent {
			return status.Error(codes.FailedPrecondition, store.DescribeDBError(pgErr))
		}
		return status.Errorf(codes.Unavailable, "database error %s", dbErr.Code)
	default:
		return status.Error(codes.Unavailable, "chunk failed: "+err.Error())
	}
}
