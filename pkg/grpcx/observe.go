package grpcx

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Metrics every server built by NewServer records, named as the Prometheus
// exporter shows them.
const (
	// RPCRequestsMetric counts calls by method and status code, refusals
	// (authorization, validation, busy) included.
	RPCRequestsMetric = "consolidation_rpc_requests_total"
	// RPCPanicsMetric counts handlers that panicked, by method; each call was
	// answered INTERNAL.
	RPCPanicsMetric = "consolidation_rpc_panics_total"
)

// callObserver is the outermost layer of every server built by NewServer: it
// counts each call by method and code, logs one line per call, and turns a
// handler's panic into INTERNAL (logged with its stack, counted) so that the
// process lives on.
type callObserver struct {
	logger   *slog.Logger
	requests metric.Int64Counter
	panics   metric.Int64Counter
}

// newCallObserver builds a callObserver recording on mp's meter.
func newCallObserver(logger *slog.Logger, mp metric.MeterProvider) *callObserver {
	meter := mp.Meter("consolidation/grpcx")
	o := &callObserver{logger: logger}
	var err error
	// A meter refuses an instrument only for a malformed name; these are constant
	// and tested, and the no-op instruments returned beside the error still work.
	o.requests, err = meter.Int64Counter("consolidation_rpc_requests",
		metric.WithDescription("gRPC calls served, by method and status code"))
	if err != nil {
		logger.Error("creating the RPC counter", "error", err.Error())
	}
	o.panics, err = meter.Int64Counter("consolidation_rpc_panics",
		metric.WithDescription("gRPC handlers that panicked (answered INTERNAL), by method"))
	if err != nil {
		logger.Error("creating the RPC panic counter", "error", err.Error())
	}
	return o
}

func (o *callObserver) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	err = o.guard(ctx, info.FullMethod, func() error {
		resp, err = handler(ctx, req)
		return err
	})
	o.observe(ctx, info.FullMethod, req, err, time.Since(start))
	return resp, err
}

func (o *callObserver) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	first := &firstRequest{ServerStream: ss}
	err := o.guard(ss.Context(), info.FullMethod, func() error { return handler(srv, first) })
	o.observe(ss.Context(), info.FullMethod, first.req, err, time.Since(start))
	return err
}

// guard runs call, answering INTERNAL if it panics.
func (o *callObserver) guard(ctx context.Context, method string, call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			o.panics.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method)))
			o.logger.ErrorContext(ctx, "rpc handler panicked", "method", method,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return call()
}

// observe counts and logs a finished call: method, code, duration, the caller's
// identity and the ids the request named, never its contents. A call served or
// cancelled by its caller is logged at debug, a refusal at info, a failure of
// the server's own at warn.
func (o *callObserver) observe(ctx context.Context, method string, req any, err error, took time.Duration) {
	code := status.Code(err)
	o.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("code", code.String())))
	level := callLevel(code)
	if !o.logger.Enabled(ctx, level) {
		return
	}
	identity, _ := CallerIdentity(ctx)
	attrs := append(make([]slog.Attr, 0, 7),
		slog.String("method", method), slog.String("code", code.String()),
		slog.Float64("duration_seconds", took.Seconds()), slog.String("identity", identity))
	attrs = append(attrs, requestIDs(req)...)
	o.logger.LogAttrs(ctx, level, "rpc", attrs...)
}

// callLevel is the log level of a call that ended with code.
func callLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK, codes.Canceled:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable, codes.DeadlineExceeded, codes.Unimplemented:
		return slog.LevelWarn
	default: // the call was refused: its arguments, its caller or the state it met
		return slog.LevelInfo
	}
}

// requestIDs are the ids a request names (closing, consolidation, chunk),
// found by the getters generated for those fields, so this package needs no
// service's types.
func requestIDs(req any) []slog.Attr {
	var out []slog.Attr
	if r, ok := req.(interface{ GetClosingId() int64 }); ok && r.GetClosingId() != 0 {
		out = append(out, slog.Int64("closing_id", r.GetClosingId()))
	}
	if r, ok := req.(interface{ GetConsolidationId() int64 }); ok && r.GetConsolidationId() != 0 {
		out = append(out, slog.Int64("consolidation_id", r.GetConsolidationId()))
	}
	if r, ok := req.(interface{ GetChunkIndex() int32 }); ok {
		out = append(out, slog.Int("chunk", int(r.GetChunkIndex())))
	}
	return out
}

// firstRequest keeps the first message a stream's handler received, for its ids.
type firstRequest struct {
	grpc.ServerStream
	req any
}

func (s *firstRequest) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && s.req == nil {
		s.req = m
	}
	return err
}

// WithMeterProvider records the server's call metrics on mp instead of the
// global meter provider.
func WithMeterProvider(mp metric.MeterProvider) ServerOption {
	return func(c *serverConfig) { c.meters = mp }
}

// meterProvider is c's meter provider: the one given, else the global one.
func (c *serverConfig) meterProvider() metric.MeterProvider {
	if c.meters != nil {
		return c.meters
	}
	return otel.GetMeterProvider()
}
