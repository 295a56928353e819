package server

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// DefaultMaxReadsInFlight is Config.MaxReadsInFlight's default.
const DefaultMaxReadsInFlight = 8

// ReadRetryDelay is the delay a shed read call is told to wait (RetryInfo).
const ReadRetryDelay = time.Second

// readMethods are the read RPCs, each limited on its own; Consolidate counts only
// with validate_only (a dry run reads a whole closing and writes nothing).
var readMethods = []string{
	consolidationv1.ConsolidationService_ExportConsolidation_FullMethodName,
	consolidationv1.ConsolidationService_ExplainEmployee_FullMethodName,
	consolidationv1.ConsolidationService_ListConsolidations_FullMethodName,
	consolidationv1.ConsolidationService_GetConsolidation_FullMethodName,
	consolidationv1.ConsolidationService_Consolidate_FullMethodName,
}

// ReadLimiter bounds the read RPCs: each method may have limit calls in flight,
// and one more is shed at once, RESOURCE_EXHAUSTED with a RetryInfo of
// ReadRetryDelay, before it reads anything. A call let in runs with a context
// marked engine.ForReading, so its database work draws on the engine's read pool,
// never on the connections that drive runs and renew their leases.
type ReadLimiter struct {
	slots map[string]chan struct{}
	limit int
}

// NewReadLimiter builds the limiter (limit 0: DefaultMaxReadsInFlight).
func NewReadLimiter(limit int) *ReadLimiter {
	if limit <= 0 {
		limit = DefaultMaxReadsInFlight
	}
	l := &ReadLimiter{slots: map[string]chan struct{}{}, limit: limit}
	for _, m := range readMethods {
		l.slots[m] = make(chan struct{}, limit)
	}
	return l
}

// acquire takes a slot of method's, or says the call is shed; ok with a nil
// release means the call is not a limited read.
func (l *ReadLimiter) acquire(method string) (release func(), err error) {
	slots, ok := l.slots[method]
	if !ok {
		return nil, nil
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	default:
		return nil, shed(method, l.limit)
	}
}

// Unary limits the unary read RPCs (Consolidate only with validate_only).
func (l *ReadLimiter) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if r, ok := req.(*consolidationv1.ConsolidateRequest); ok && !r.GetValidateOnly() {
			return handler(ctx, req)
		}
		release, err := l.acquire(info.FullMethod)
		if err != nil {
			return nil, err
		}
		if release == nil {
			return handler(ctx, req)
		}
		defer release()
		return handler(engine.ForReading(ctx), req)
	}
}

// Stream limits ExportConsolidation for as long as its stream lasts.
func (l *ReadLimiter) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		release, err := l.acquire(info.FullMethod)
		if err != nil {
			return err
		}
		if release == nil {
			return handler(srv, ss)
		}
		defer release()
		return handler(srv, readingStream{ServerStream: ss, ctx: engine.ForReading(ss.Context())})
	}
}

type readingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s readingStream) Context() context.Context { return s.ctx }

// shed is the refusal of a read beyond its method's limit.
func shed(method string, limit int) error {
	st := status.Newf(codes.ResourceExhausted, "%s has %d calls in flight, its limit (READ_MAX_IN_FLIGHT); retry in %s",
		method, limit, ReadRetryDelay)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ReadRetryDelay)}); err == nil {
		st = d
	}
	return st.Err()
}
