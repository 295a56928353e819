package telemetry_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/telemetry"
)

func TestTraceExportFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    telemetry.TraceExport
		wantErr string
	}{
		{name: "NoEndpointIsOff", env: map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}},
		{name: "EndpointDefaultsToHTTP", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			want: telemetry.TraceExport{Protocol: telemetry.ProtocolHTTP, Endpoint: "http://collector:4318"}},
		{name: "GRPC", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			want: telemetry.TraceExport{Protocol: telemetry.ProtocolGRPC, Endpoint: "https://collector:4317"}},
		{name: "TracesVariablesWin", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://all:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			want: telemetry.TraceExport{Protocol: telemetry.ProtocolGRPC, Endpoint: "http://traces:4317"}},
		{name: "ExporterNoneIsOff", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "SDKDisabledIsOff", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "ExporterOTLP", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp"},
			want: telemetry.TraceExport{Protocol: telemetry.ProtocolHTTP, Endpoint: "http://c:4318"}},
		{name: "OtherExporterRefused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"},
			wantErr: `OTEL_TRACES_EXPORTER="zipkin"`},
		{name: "JSONRefused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL="http/json"`},
		{name: "EndpointWithoutSchemeRefused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
			wantErr: `OTEL_EXPORTER_OTLP_ENDPOINT="collector:4317": want a URL`},
		{name: "TracesEndpointNamedInTheError", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "://"},
			wantErr: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="://"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := telemetry.TraceExportFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
