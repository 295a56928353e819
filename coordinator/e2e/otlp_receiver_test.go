package e2e_test

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// receivedSpan is one span an OTLP receiver was sent, flattened: ids in hex,
// attribute values as strings.
type receivedSpan struct {
	Service                   string
	Name                      string
	Kind                      tracev1.Span_SpanKind
	TraceID, SpanID, ParentID string
	Attrs                     map[string]string
	Links                     []spanLink
}

type spanLink struct{ TraceID, SpanID string }

// otlpReceiver collects the spans exported to it, over OTLP/gRPC (GRPCURL) and
// OTLP/HTTP with protobuf bodies (HTTPURL, path /v1/traces), as a collector would.
type otlpReceiver struct {
	collectortracev1.UnimplementedTraceServiceServer
	GRPCURL, HTTPURL string

	mu    sync.Mutex
	spans []receivedSpan
}

// newOTLPReceiver serves both protocols on free loopback ports until the test ends.
func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	collectortracev1.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	r.GRPCURL = "http://" + l.Addr().String()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg collectortracev1.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&msg)
		out, _ := proto.Marshal(&collectortracev1.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	r.HTTPURL = hs.URL + "/v1/traces"
	return r
}

// Export is the OTLP/gRPC trace service.
func (r *otlpReceiver) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	r.add(req)
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) add(req *collectortracev1.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got := receivedSpan{Service: service, Name: s.GetName(), Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Attrs: attrs(s.GetAttributes())}
				for _, l := range s.GetLinks() {
					got.Links = append(got.Links, spanLink{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				r.spans = append(r.spans, got)
			}
		}
	}
}

// Spans returns a copy of every span received so far.
func (r *otlpReceiver) Spans() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...)
}

func attrs(kvs []*commonv1.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonv1.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonv1.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
		case *commonv1.AnyValue_BoolValue:
			m[kv.GetKey()] = strconv.FormatBool(v.BoolValue)
		default:
			m[kv.GetKey()] = kv.GetValue().String()
		}
	}
	return m
}
