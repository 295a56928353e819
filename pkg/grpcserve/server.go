// Package grpcserve runs a gRPC server the way both binaries need it: OpenTelemetry
// stats handler, health and reflection registered, and a graceful shutdown that
// turns readiness to NOT_SERVING first, drains, and hard-stops after a deadline.
package grpcserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Server is a gRPC server with health and reflection.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	logger *slog.Logger
}

// New builds the server; register services on s.GRPC before Serve.
func New(logger *slog.Logger) *Server {
	s := &Server{
		GRPC: grpc.NewServer(
			grpc.StatsHandler(otelgrpc.NewServerHandler()),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		),
		Health: health.NewServer(),
		logger: logger,
	}
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	reflection.Register(s.GRPC)
	return s
}

// Serve serves on l until ctx is done, then shuts down: health NOT_SERVING, stop
// taking new calls, let in-flight calls finish for up to drain, then hard-stop
// (cancelling whatever is left, whose chunks the coordinator re-dispatches).
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	errc := make(chan error, 1)
	go func() { errc <- s.GRPC.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", "drain_seconds", drain.Seconds())
	s.Health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(drain):
		s.logger.Warn("drain deadline passed, stopping in-flight calls")
		s.GRPC.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
