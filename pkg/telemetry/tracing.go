package telemetry

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/nominacl/consolidation/pkg/config"
)

// The OTLP protocols a trace exporter may speak (OTEL_EXPORTER_OTLP_PROTOCOL,
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL); ProtocolHTTP is the default, as the
// OpenTelemetry specification says.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// ShutdownTimeout bounds how long Tracing.Shutdown waits for the last spans to be
// exported.
const ShutdownTimeout = 5 * time.Second

// Tracing is the process's tracer provider, exporting spans over OTLP as the
// standard OTEL_* environment says, or nothing (tracing off).
type Tracing struct {
	provider *sdktrace.TracerProvider // nil: off
}

// TraceExport is what the environment asks of trace export: Protocol "" is off.
type TraceExport struct {
	Protocol string // ProtocolGRPC or ProtocolHTTP; "": no export
	Endpoint string // the collector's URL, as OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT gave it
}

// TraceExportFromEnv reads whether and how spans are exported: off when
// OTEL_SDK_DISABLED is true, OTEL_TRACES_EXPORTER is none, or no endpoint is set
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT); an
// exporter other than otlp, a protocol other than grpc or http/protobuf, or an
// endpoint that is not an http(s) URL is an error. The exporters read the rest of
// the OTEL_EXPORTER_OTLP_* variables themselves (insecure, headers, certificates,
// compression, timeout), and the SDK the sampler (OTEL_TRACES_SAMPLER[_ARG]) and
// the batching (OTEL_BSP_*).
func TraceExportFromEnv(getenv func(string) string) (TraceExport, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return TraceExport{}, nil
	}
	switch exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exporter {
	case "", "otlp":
	case "none":
		return TraceExport{}, nil
	default:
		return TraceExport{}, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp or none", exporter)
	}
	name := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	endpoint := getenv(name)
	if endpoint == "" {
		name = "OTEL_EXPORTER_OTLP_ENDPOINT"
		endpoint = getenv(name)
	}
	if endpoint == "" {
		return TraceExport{}, nil
	}
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return TraceExport{}, fmt.Errorf("%s=%q: want a URL such as http://collector:4318", name, endpoint)
	}
	protocol := cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), ProtocolHTTP)
	if protocol != ProtocolGRPC && protocol != ProtocolHTTP {
		return TraceExport{}, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want %s or %s", protocol, ProtocolGRPC, ProtocolHTTP)
	}
	return TraceExport{Protocol: protocol, Endpoint: endpoint}, nil
}

// SetupTracing sets W3C TraceContext and Baggage as the global propagators and,
// when export names a protocol, installs a global tracer provider that batches
// spans to the OTLP collector, its resource naming service (OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override) and the build's config.Version. With export
// off the global provider stays the no-op one: spans cost nothing and go nowhere,
// while trace context still passes through. OpenTelemetry's own errors (an export
// that failed) are logged with logger.
func SetupTracing(ctx context.Context, logger *slog.Logger, service string, export TraceExport) (*Tracing, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", "error", err.Error())
	}))
	if export.Protocol == "" {
		return &Tracing{}, nil
	}
	var exporter sdktrace.SpanExporter
	var err error
	if export.Protocol == ProtocolGRPC {
		exporter, err = otlptracegrpc.New(ctx)
	} else {
		exporter, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", config.Version)),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("describing the process for traces: %w", err)
	}
	t := &Tracing{provider: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))}
	otel.SetTracerProvider(t.provider)
	u, _ := url.Parse(export.Endpoint) // checked by TraceExportFromEnv; only its host is logged
	logger.InfoContext(ctx, "exporting traces", "protocol", export.Protocol, "collector", u.Host)
	return t, nil
}

// Shutdown exports the spans still batched, for up to ShutdownTimeout, and stops
// the provider.
func (t *Tracing) Shutdown(ctx context.Context, logger *slog.Logger) {
	if t.provider == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		logger.WarnContext(ctx, "flushing traces", "error", err.Error())
	}
}

// PgxTracer traces a pgx pool's statements, batches, COPYs, connects and
// acquires as client spans under the span of the context they run in (none
// without one), through the global tracer provider. A span carries the statement
// text, with its $n placeholders, never the argument values (no personal data in
// traces), and an error as pkg/redact gives it: a PostgreSQL error by its
// SQLSTATE and names, never its message, which may quote a row's values. It
// records no metrics.
func PgxTracer() pgx.QueryTracer {
	return redactedPgxTracer{otelpgx.NewTracer(otelpgx.WithMeterProvider(noopmetric.NewMeterProvider()))}
}
