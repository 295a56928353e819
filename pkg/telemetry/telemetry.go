// Package telemetry sets up OpenTelemetry metrics exported for Prometheus on
// METRICS_ADDR (/metrics), and the process measurements workers report (peak RSS,
// thread CPU time).
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

	promclient "github.com/prometheus/client_golang/prometheus"
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
// own, and serves it on addr ("" serves nothing; ":0" picks a free port) with the
// Go profiler under /debug/pprof/.
func Setup(ctx context.Context, logger *slog.Logger, addr string) (*Metrics, error) {
	reg := promclient.NewRegistry()
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
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.addr = l.Addr()
	go func() {
		if err := m.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.ErrorContext(ctx, "metrics server stopped", "error", err.Error())
		}
	}()
	logger.InfoContext(ctx, "serving metrics", "addr", m.addr.String())
	return m, nil
}

// Shutdown stops the /metrics server and flushes the provider.
func (m *Metrics) Shutdown(ctx context.Context) {
	if m.server != nil {
		_ = m.server.Shutdown(ctx)
	}
	_ = m.Provider.Shutdown(ctx)
}
