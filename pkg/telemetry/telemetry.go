// Package telemetry sets up OpenTelemetry metrics exported for Prometheus on
// METRICS_ADDR (/metrics only), the Go profiler on PPROF_ADDR (only when set),
// and the process measurements workers report (peak RSS, thread CPU time).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics is the process's meter provider and, when an address was given, the
// HTTP server that serves /metrics.
type Metrics struct {
	Provider *sdkmetric.MeterProvider
	server   *http.Server
	addr     net.Addr
}

// Setup installs a global meter provider backed by a Prometheus registry of its
// own, and serves it on addr as /metrics, and nothing else ("" serves nothing;
// ":0" picks a free port).
func Setup(ctx context.Context, logger *slog.Logger, addr string) (*Metrics, error) {
	reg := newRegistry()
	exporter, err := prometheus.New(prometheus.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("creating the Prometheus exporter: %w", err)
	}
	m := &Metrics{Provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))}
	otel.SetMeterProvider(m.Provider)
	if addr == "" {
		return m, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.addr = l.Addr()
	serveHTTP(ctx, logger, m.server, l, "metrics")
	return m, nil
}

// Profiler is the Go profiler's HTTP server (/debug/pprof/), nil when off.
type Profiler struct{ server *http.Server }

// StartProfiler serves the Go profiler under /debug/pprof/ on addr (PPROF_ADDR);
// "" serves nothing. It has no authentication: bind it to loopback, or reach it
// with kubectl port-forward.
func StartProfiler(ctx context.Context, logger *slog.Logger, addr string) (*Profiler, error) {
	if addr == "" {
		return &Profiler{}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &Profiler{server: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	serveHTTP(ctx, logger, p.server, l, "profiler")
	return p, nil
}

// Shutdown stops the profiler's server.
func (p *Profiler) Shutdown(ctx context.Context) {
	if p.server != nil {
		_ = p.server.Shutdown(ctx)
	}
}

func serveHTTP(ctx context.Context, logger *slog.Logger, srv *http.Server, l net.Listener, what string) {
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.ErrorContext(ctx, what+" server stopped", "error", err.Error())
		}
	}()
	logger.InfoContext(ctx, "serving "+what, "addr", l.Addr().String())
}

// Shutdown stops the /metrics server and flushes the provider.
func (m *Metrics) Shutdown(ctx context.Context) {
	if m.server != nil {
		_ = m.server.Shutdown(ctx)
	}
	_ = m.Provider.Shutdown(ctx)
}
