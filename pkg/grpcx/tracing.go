package grpcx

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
)

// otelOptions configure the OpenTelemetry stats handler of every server and
// client: spans and RPC metrics through the global providers, trace context
// through the global propagator (telemetry.SetupTracing), and none for health
// checks (probes, the coordinator's watches on its workers), which would
// otherwise fill the traces with a root span every probe.
var otelOptions = []otelgrpc.Option{otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))}
