package grpcx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// panicky is a service whose every method panics.
var panicky = grpc.ServiceDesc{
	ServiceName: "test.Panicky",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Boom", Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(healthpb.HealthCheckRequest)
		if err := dec(in); err != nil {
			return nil, err
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panicky/Boom"},
			func(context.Context, any) (any, error) { panic("boom") })
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "BoomStream", ServerStreams: true, Handler: func(any, grpc.ServerStream) error {
		panic("boom in a stream")
	}}},
}

// syncBuffer is a log sink the server's goroutines may write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines are the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		out = append(out, m)
	}
	return out
}

// observed is a server with the panicky service, its logs at debug, and its
// metrics on a manual reader.
type observed struct {
	conn   *grpc.ClientConn
	logs   *syncBuffer
	reader *sdkmetric.ManualReader
}

func serveObserved(t *testing.T) observed {
	t.Helper()
	o := observed{logs: &syncBuffer{}, reader: sdkmetric.NewManualReader()}
	logger := slog.New(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := grpcx.NewServer(logger, grpcx.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))))
	srv.GRPC.RegisterService(&panicky, struct{}{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, time.Second) }()
	o.conn, err = grpcx.Dial(l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = o.conn.Close()
		cancel()
		require.NoError(t, <-done)
	})
	return o
}

// counts returns the consolidation_rpc_requests (or _panics) counts by
// "method code" (or method).
func (o observed) counts(t *testing.T, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				method, _ := dp.Attributes.Value(attribute.Key("method"))
				key := method.AsString()
				if code, ok := dp.Attributes.Value(attribute.Key("code")); ok {
					key += " " + code.AsString()
				}
				out[key] += dp.Value
			}
		}
	}
	return out
}

func TestCallObserver(t *testing.T) {
	t.Parallel()
	o := serveObserved(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	health := healthpb.NewHealthClient(o.conn)

	t.Run("APanicIsInternalAndTheServerLives", func(t *testing.T) {
		err := o.conn.Invoke(ctx, "/test.Panicky/Boom", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
		require.Equal(t, codes.Internal, status.Code(err), "%v", err)
		stream, err := o.conn.NewStream(ctx, &panicky.Streams[0], "/test.Panicky/BoomStream")
		require.NoError(t, err)
		require.NoError(t, stream.SendMsg(&healthpb.HealthCheckRequest{}))
		require.NoError(t, stream.CloseSend())
		err = stream.RecvMsg(&healthpb.HealthCheckResponse{})
		require.Equal(t, codes.Internal, status.Code(err), "%v", err)
		// The same server answers the next call.
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	})

	t.Run("CountsCallsByMethodAndCode", func(t *testing.T) {
		// A refusal: the health service knows no service of this name.
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no-such-service"})
		require.Equal(t, codes.NotFound, status.Code(err))
		_, err = health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no-such-service"})
		require.Equal(t, codes.NotFound, status.Code(err))
		require.Equal(t, map[string]int64{
			"/test.Panicky/Boom Internal":           1,
			"/test.Panicky/BoomStream Internal":     1,
			"/grpc.health.v1.Health/Check OK":       1,
			"/grpc.health.v1.Health/Check NotFound": 2,
		}, o.counts(t, "consolidation_rpc_requests"))
		require.Equal(t, map[string]int64{"/test.Panicky/Boom": 1, "/test.Panicky/BoomStream": 1},
			o.counts(t, "consolidation_rpc_panics"))
	})

	t.Run("LogsOneLinePerCallWithoutItsContents", func(t *testing.T) {
		byLevel := map[string]int{}
		panics := 0
		for _, l := range o.logs.lines(t) {
			switch l["msg"] {
			case "rpc":
				byLevel[l["level"].(string)+" "+l["code"].(string)]++
				require.Contains(t, l, "method")
				require.Contains(t, l, "duration_seconds")
				require.Contains(t, l, "identity")
			case "rpc handler panicked":
				panics++
				require.Contains(t, l["stack"], "observe.go")
			}
		}
		require.Equal(t, map[string]int{"WARN Internal": 2, "DEBUG OK": 1, "INFO NotFound": 2}, byLevel)
		require.Equal(t, 2, panics)
		o.logs.mu.Lock()
		defer o.logs.mu.Unlock()
		require.NotContains(t, o.logs.buf.String(), "no-such-service", "a request's contents are never logged")
	})
}
