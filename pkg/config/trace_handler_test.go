package config

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(traceHandler{slog.NewJSONHandler(&buf, nil)}).With("service", "test")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	})
	line := func(ctx context.Context) map[string]any {
		t.Helper()
		buf.Reset()
		logger.InfoContext(ctx, "chunk committed", "chunk", 3)
		var m map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
		return m
	}

	t.Run("AddsTheIdsOfTheSpanInTheContext", func(t *testing.T) {
		got := line(trace.ContextWithSpanContext(context.Background(), sc))
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", got["trace_id"])
		require.Equal(t, "00f067aa0ba902b7", got["span_id"])
		require.Equal(t, "test", got["service"], "attributes given With are kept")
		require.InDelta(t, 3, got["chunk"], 0)
	})
	t.Run("NothingWithoutASpan", func(t *testing.T) {
		got := line(context.Background())
		require.NotContains(t, got, "trace_id")
		require.NotContains(t, got, "span_id")
	})
}
