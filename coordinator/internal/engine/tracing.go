package engine

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// Span names of a run's trace: the run, driven on a context detached from the
// Consolidate call, is a trace of its own, linked to that call's span; each chunk
// dispatch is a child of the run, and the ProcessChunk call (otelgrpc's client
// span, then the worker's server span and its SQL) a child of the dispatch.
const (
	SpanRun   = "consolidation.run"
	SpanChunk = "consolidation.chunk"
)

// tracer is the engine's, from the global provider (a no-op one while tracing is
// off; it delegates to the real one once telemetry.SetupTracing installs it).
var tracer = otel.Tracer("github.com/nominacl/consolidation/coordinator/internal/engine")

// traceparentOf is the W3C traceparent of the span ctx carries, "" when none: the
// start stores it with the run so that whoever drives the run links to the call.
func traceparentOf(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// traceparentReadTimeout bounds startRunSpan's read of the stored traceparent.
const traceparentReadTimeout = 5 * time.Second

// startRunSpan starts the run's span, the root of a new trace linked to the span
// of the call that started the run (its stored traceparent; no link when there is
// none or it cannot be read). It carries ids only. The traceparent is read only
// for a span that records: with tracing off, driving a run costs no read for it.
func (e *Engine) startRunSpan(ctx context.Context, run store.Run) (context.Context, trace.Span) {
	spanCtx, span := tracer.Start(ctx, SpanRun, trace.WithNewRoot(), trace.WithAttributes(
		attribute.Int64("consolidation_id", run.ID), attribute.Int64("closing_id", run.ClosingID)))
	if !span.IsRecording() {
		return spanCtx, span
	}
	// A shutdown arriving meanwhile does not cut the read short: the span is
	// exported whatever becomes of the run, and without its link it would belong to
	// no call (docs/architecture.md, "Tracing (pkg/telemetry)"). The read is one primary-key lookup.
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), traceparentReadTimeout)
	defer cancel()
	tp, err := e.ledger.RunTraceparent(readCtx, run.ID)
	if err != nil {
		e.logger.WarnContext(ctx, "reading the run's traceparent", "consolidation_id", run.ID, "error", err.Error())
	}
	started := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	if sc := trace.SpanContextFromContext(started); sc.IsValid() {
		span.AddLink(trace.Link{SpanContext: sc})
	}
	return spanCtx, span
}

// startChunkSpan starts the span of one dispatch of a chunk, a child of the run's.
func startChunkSpan(ctx context.Context, run store.Run, index, attempt int, worker string) (context.Context, trace.Span) {
	return tracer.Start(ctx, SpanChunk, trace.WithAttributes(attribute.Int64("consolidation_id", run.ID),
		attribute.Int("chunk", index), attribute.Int("attempt", attempt), attribute.String("worker", worker)))
}

// endChunkSpan ends a dispatch's span with how the attempt ended.
func endChunkSpan(span trace.Span, outcome domain.Outcome) {
	span.SetAttributes(attribute.String("outcome", string(outcome)))
	if outcome != domain.OutcomeCommitted && outcome != domain.OutcomeFromLedger {
		span.SetStatus(codes.Error, string(outcome))
	}
	span.End()
}
