package telemetry

import (
	"context"
	"log/slog"
)

// Endpoints is where a service's telemetry goes: METRICS_ADDR, PPROF_ADDR and
// the trace export of OTEL_EXPORTER_OTLP_*.
type Endpoints struct {
	MetricsAddr, PprofAddr string
	Traces                 TraceExport
}

// Start is the one start-up path of both services' telemetry (docs/architecture.md):
// the meter provider and /metrics, the profiler when asked for, and trace export.
// The returned stop flushes and stops them, in the reverse order, whatever ctx
// has become by then.
func Start(ctx context.Context, logger *slog.Logger, service string, e Endpoints) (stop func(), err error) {
	metrics, err := Setup(ctx, logger, e.MetricsAddr)
	if err != nil {
		return nil, err
	}
	after := context.WithoutCancel(ctx)
	profiler, err := StartProfiler(ctx, logger, e.PprofAddr)
	if err != nil {
		metrics.Shutdown(after)
		return nil, err
	}
	tracing, err := SetupTracing(ctx, logger, service, e.Traces)
	if err != nil {
		profiler.Shutdown(after)
		metrics.Shutdown(after)
		return nil, err
	}
	return func() {
		tracing.Shutdown(after, logger)
		profiler.Shutdown(after)
		metrics.Shutdown(after)
	}, nil
}
