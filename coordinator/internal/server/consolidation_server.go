// Package server is the coordinator's gRPC edge: thin handlers that validate the
// request, call the engine and map its errors to status codes in one place.
package server

import (
	"cmp"
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

// DefaultMaxWatchStreamsPerCaller is Config.MaxWatchStreamsPerCaller's default.
const DefaultMaxWatchStreamsPerCaller = 100

// Config configures a ConsolidationServer.
type Config struct {
	// MaxWatchStreamsPerCaller bounds the WatchConsolidation streams one caller
	// (callerKey) holds open at once; more are refused RESOURCE_EXHAUSTED
	// (default: DefaultMaxWatchStreamsPerCaller, 100).
	MaxWatchStreamsPerCaller int
}

// ConsolidationServer implements ConsolidationService.
type ConsolidationServer struct {
	consolidationv1.UnimplementedConsolidationServiceServer
	logger   *slog.Logger
	cfg      Config
	engine   *engine.Engine
	watchers *streamLimiter
}

// NewConsolidationServer builds the server.
func NewConsolidationServer(logger *slog.Logger, e *engine.Engine, cfg Config) *ConsolidationServer {
	cfg.MaxWatchStreamsPerCaller = cmp.Or(cfg.MaxWatchStreamsPerCaller, DefaultMaxWatchStreamsPerCaller)
	return &ConsolidationServer{logger: logger, cfg: cfg, engine: e, watchers: newStreamLimiter(cfg.MaxWatchStreamsPerCaller)}
}

func (s *ConsolidationServer) Consolidate(ctx context.Context, req *consolidationv1.ConsolidateRequest) (*consolidationv1.ConsolidateResponse, error) {
	if req.GetClosingId() <= 0 {
		return nil, s.toStatus(ctx, engine.InvalidArgument("closing_id", "closing_id must be > 0"))
	}
	mode, ok := modes[req.GetMode()]
	if !ok {
		return nil, s.toStatus(ctx, engine.InvalidArgument("mode", "mode %d is not a known ConsolidationMode", req.GetMode()))
	}
	policy, ok := domainpb.PolicyFromProto(req.GetChunkPolicy())
	if !ok {
		return nil, s.toStatus(ctx, engine.InvalidArgument("chunk_policy", "chunk_policy %d is not a known ChunkPolicy", req.GetChunkPolicy()))
	}
	identity, _ := grpcx.CallerIdentity(ctx)
	run, err := s.engine.Start(ctx, engine.StartRequest{ClosingID: req.GetClosingId(), Mode: mode, Policy: policy,
		ChunkSize: int(req.GetChunkSize()), Force: req.GetForce(), RequestID: req.GetRequestId(), RequestedBy: identity,
		ValidateOnly: req.GetValidateOnly()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return consolidateResponse(run), nil
}

func (s *ConsolidationServer) GetConsolidation(ctx context.Context, req *consolidationv1.GetConsolidationRequest) (*consolidationv1.GetConsolidationResponse, error) {
	r, err := s.engine.Get(ctx, engine.Ref{RunID: req.GetConsolidationId(), ClosingID: req.GetClosingId()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consolidationv1.GetConsolidationResponse{Consolidation: toProto(r)}, nil
}

func (s *ConsolidationServer) WatchConsolidation(req *consolidationv1.WatchConsolidationRequest, stream consolidationv1.ConsolidationService_WatchConsolidationServer) error {
	caller := callerKey(stream.Context())
	if !s.watchers.acquire(caller) {
		s.logger.WarnContext(stream.Context(), "watch stream refused", "caller", caller, "limit", s.cfg.MaxWatchStreamsPerCaller)
		return status.Errorf(codes.ResourceExhausted, "caller %s already has %d WatchConsolidation streams open, the limit per caller (MAX_WATCH_STREAMS_PER_CALLER); close one first",
			caller, s.cfg.MaxWatchStreamsPerCaller)
	}
	defer s.watchers.release(caller)
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

// toStatus maps engine errors to codes, with their details (errorStatus);
// anything else is INTERNAL with a message that leaks nothing (the details are in
// the log).
func (s *ConsolidationServer) toStatus(ctx context.Context, err error) error {
	var ee *engine.Error
	if errors.As(err, &ee) {
		return errorStatus(ee).Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	s.logger.ErrorContext(ctx, "request failed", "error", err.Error())
	return status.Error(codes.Internal, "internal error; see the coordinator log")
}
