// Package httpapi is the coordinator's HTTP/JSON API (HTTP_ADDR): every
// ConsolidationService method at the path its google.api.http binding in
// proto/consolidation/v1 gives (docs/openapi/consolidation.swagger.json),
// transcoded by grpc-gateway.
//
// The gateway calls the coordinator's own gRPC server in process
// (grpcx.Server.DialInProcess), one connection per HTTP request carrying the
// request's peer: its address and, on TLS, the verified client certificate. An
// HTTP call therefore passes the same authorization policy (by gRPC method
// name), audit, per-caller limits, metrics and access log as a gRPC one, and
// its identity is the certificate the HTTP port verified, never a header.
package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// MaxRequestBytes bounds a request body, as grpc-go's default bounds a
// message the gRPC port receives (4 MiB).
const MaxRequestBytes = 4 << 20

// ReadHeaderTimeout is how long a connection may take to send a request's
// headers.
const ReadHeaderTimeout = 10 * time.Second

// idleTimeout is how long a kept-alive connection may wait for its next request
// before the server closes it, as the dashboard's listener does: without it an
// idle connection, and its goroutine and buffers, is kept until the client
// closes it. A variable for the test only.
var idleTimeout = 2 * time.Minute

// NewHandler is the API over srv, which must be served (grpcx.Server.Serve).
// Responses use the proto's field names, with every field present (int64 as
// strings, enums by name), as `cierrectl -json` prints them; requests may use
// the proto's names or their lowerCamelCase JSON names. A refusal is the gRPC
// status mapped to its HTTP status, with the status as the body: code, message
// and details (google.rpc.ErrorInfo and the others, "@type" naming each). The
// streaming methods answer newline-delimited JSON, one {"result": message}
// object a line, and a status that ends the stream after the first line as an
// {"error": status} line.
func NewHandler(srv *grpcx.Server) http.Handler {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		// No header becomes gRPC metadata: nothing the caller writes in a header
		// reaches the server (its identity is its certificate's).
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
	)
	// Registration fails only on a malformed path pattern, which the generated
	// code's are not.
	if err := consolidationv1.RegisterConsolidationServiceHandlerClient(context.Background(), mux,
		consolidationv1.NewConsolidationServiceClient(perRequestConn{})); err != nil {
		panic(fmt.Sprintf("httpapi: registering the gateway: %v", err))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Nothing is dialled yet: a server shutting down fails the call,
		// UNAVAILABLE (HTTP 503).
		conn, err := srv.DialInProcess(remoteAddr(r), r.TLS)
		if err != nil { // grpc.NewClient refuses only invalid options
			runtime.DefaultHTTPErrorHandler(r.Context(), mux, &runtime.JSONPb{}, w, r,
				status.Errorf(codes.Internal, "in-process connection: %v", err))
			return
		}
		defer conn.Close()
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), connKey{}, conn)))
	})
}

// Serve serves h on l, over TLS when tlsConfig is set
// (grpcx.Security.HTTPServerTLS), until ctx is done; then it stops taking
// requests and lets those in flight finish for up to drain.
func Serve(ctx context.Context, logger *slog.Logger, l net.Listener, h http.Handler, tlsConfig *tls.Config, drain time.Duration) error {
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: idleTimeout,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		logger.Warn("HTTP drain deadline passed, closing the connections left")
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type connKey struct{}

// perRequestConn sends each call over the in-process connection NewHandler made
// for the HTTP request the call's context belongs to.
type perRequestConn struct{}

func (perRequestConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	conn, ok := ctx.Value(connKey{}).(*grpc.ClientConn)
	if !ok {
		return status.Error(codes.Internal, "no in-process connection")
	}
	return conn.Invoke(ctx, method, args, reply, opts...)
}

func (perRequestConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	conn, ok := ctx.Value(connKey{}).(*grpc.ClientConn)
	if !ok {
		return nil, status.Error(codes.Internal, "no in-process connection")
	}
	return conn.NewStream(ctx, desc, method, opts...)
}

// remoteAddr is the HTTP caller's address, which the gRPC server sees as the
// peer's (per-caller limits key on its host when there is no identity).
func remoteAddr(r *http.Request) net.Addr {
	addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		return nil
	}
	return addr
}
