// Package server is the coordinator's gRPC edge: thin handlers that validate the
// request, call the engine and map its errors to status codes in one place.
package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// ConsolidationServer implements ConsolidationService.
type ConsolidationServer struct {
	consolidationv1.UnimplementedConsolidationServiceServer
	logger *slog.Logger
	engine *engine.Engine
}

// NewConsolidationServer builds the server.
func NewConsolidationServer(logger *slog.Logger, e *engine.Engine) *ConsolidationServer {
	return &ConsolidationServer{logger: logger, engine: e}
}

func (s *ConsolidationServer) Consolidate(ctx context.Context, req *consolidationv1.ConsolidateRequest) (*consolidationv1.ConsolidateResponse, error) {
	if req.GetClosingId() <= 0 {
		return nil, status.Error(codes.InvalidArgument, "closing_id must be > 0")
	}
	if req.GetChunkSize() < 0 {
		return nil, status.Error(codes.InvalidArgument, "chunk_size must be ≥ 0")
	}
	mode, ok := modes[req.GetMode()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "mode %d is not a known ConsolidationMode", req.GetMode())
	}
	policy, ok := domainpb.PolicyFromProto(req.GetChunkPolicy())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "chunk_policy %d is not a known ChunkPolicy", req.GetChunkPolicy())
	}
	identity, _ := grpcx.CallerIdentity(ctx)
	run, err := s.engine.Start(ctx, engine.StartRequest{ClosingID: req.GetClosingId(), Mode: mode, Policy: policy,
		ChunkSize: int(req.GetChunkSize()), Force: req.GetForce(), RequestedBy: identity})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consolidationv1.ConsolidateResponse{ConsolidationId: run.ID, ClosingId: run.ClosingID, Estado: string(run.Estado),
		TotalChunks: int32(run.TotalChunks), TotalEmployees: int32(run.TotalEmployees)}, nil
}

func (s *ConsolidationServer) GetConsolidation(ctx context.Context, req *consolidationv1.GetConsolidationRequest) (*consolidationv1.GetConsolidationResponse, error) {
	r, err := s.engine.Get(ctx, engine.Ref{RunID: req.GetConsolidationId(), ClosingID: req.GetClosingId()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consolidationv1.GetConsolidationResponse{Consolidation: toProto(r)}, nil
}

func (s *ConsolidationServer) WatchConsolidation(req *consolidationv1.WatchConsolidationRequest, stream consolidationv1.ConsolidationService_WatchConsolidationServer) error {
	ref := engine.Ref{RunID: req.GetConsolidationId(), ClosingID: req.GetClosingId()}
	err := s.engine.Watch(stream.Context(), ref, func(p progress.Snapshot, final *engine.Report) error {
		msg := &consolidationv1.WatchConsolidationResponse{Progress: progressProto(p)}
		if final != nil {
			msg.Final = toProto(*final)
		}
		return stream.Send(msg)
	})
	if err != nil {
		return s.toStatus(stream.Context(), err)
	}
	return nil
}

func (s *ConsolidationServer) CancelConsolidation(ctx context.Context, req *consolidationv1.CancelConsolidationRequest) (*consolidationv1.CancelConsolidationResponse, error) {
	identity, _ := grpcx.CallerIdentity(ctx)
	r, err := s.engine.Cancel(ctx, engine.Ref{RunID: req.GetConsolidationId(), ClosingID: req.GetClosingId()}, identity)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consolidationv1.CancelConsolidationResponse{Consolidation: toProto(r)}, nil
}

var modes = map[consolidationv1.ConsolidationMode]domain.Mode{
	consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_UNSPECIFIED:  domain.ModeFull,
	consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_FULL:         domain.ModeFull,
	consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED: domain.ModeRetryFailed,
}

// toStatus maps engine errors to codes; anything else is INTERNAL with a message
// that leaks nothing (the details are in the log).
func (s *ConsolidationServer) toStatus(ctx context.Context, err error) error {
	var ee *engine.Error
	if errors.As(err, &ee) {
		code := map[engine.Kind]codes.Code{
			engine.KindInvalidArgument:    codes.InvalidArgument,
			engine.KindNotFound:           codes.NotFound,
			engine.KindFailedPrecondition: codes.FailedPrecondition,
			engine.KindAlreadyExists:      codes.AlreadyExists,
			engine.KindUnavailable:        codes.Unavailable,
		}[ee.Kind]
		if code == codes.OK {
			code = codes.Internal
		}
		return status.Error(code, ee.Msg)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	s.logger.ErrorContext(ctx, "request failed", "error", err.Error())
	return status.Error(codes.Internal, "internal error; see the coordinator log")
}
