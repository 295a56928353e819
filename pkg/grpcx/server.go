package grpcx

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// DefaultDrain is how long Serve lets in-flight calls finish after its context
// ends, unless SHUTDOWN_DRAIN says otherwise.
const DefaultDrain = 30 * time.Second

// Keepalive of every server built by NewServer: a connection on which nothing has
// been heard for KeepaliveTime is pinged, and closed when the ping is not
// answered within KeepaliveTimeout, cancelling the contexts of its calls. A
// worker so notices a coordinator that vanished (killed with its host, cut off by
// the network) within about ten seconds, instead of holding the slot of an
// orphaned chunk until the chunk's soft timeout. The clients of Dial ping every
// ClientKeepaliveTime, which KeepaliveMinClientPing permits.
const (
	KeepaliveTime          = 5 * time.Second
	KeepaliveTimeout       = 5 * time.Second
	KeepaliveMinClientPing = 5 * time.Second
)

// Bounds of every server built by NewServer on its connections. A client may
// hold MaxConcurrentStreams calls open on one connection (more wait for one to
// end); a connection is closed gracefully (GOAWAY) after MaxConnectionAge, ±10 %
// jitter, and its calls still open then get MaxConnectionAgeGrace to finish, so
// a client whose certificate was revoked or rotated away reconnects (a new
// handshake, judged afresh) within MaxConnectionAge + MaxConnectionAgeGrace, and
// load spreads again over replicas. The grace covers a chunk's hard limit
// (CHUNK_HARD_TIMEOUT's default, 600 s); a longer WatchConsolidation or export
// stream is cut, and cierrectl's watch resumes on the UNAVAILABLE it gets.
const (
	MaxConcurrentStreams  = 1000
	MaxConnectionAge      = 30 * time.Minute
	MaxConnectionAgeGrace = 10 * time.Minute
)

// Server is a gRPC server with health and reflection registered, and a graceful
// shutdown that turns readiness to NOT_SERVING first, drains, and hard-stops
// after a deadline. ServeHealth adds a plaintext port serving only its health
// (HEALTH_ADDR, for kubelet probes, which present no certificate).
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	logger *slog.Logger

	healthOnly     *grpc.Server
	healthListener net.Listener
	inProcess      *inProcessListener // DialInProcess's connections
}

// NewServer builds the server; register services on s.GRPC before Serve. It
// serves with the default credentials and no interceptors unless opts say
// otherwise, always with the OpenTelemetry stats handler, keepalive (pinging
// silent clients, permitting the pings of Dial's, refusing more frequent ones),
// the connection bounds above and the call observer (RPCs
// counted by method and code, one log line per call, a panic answered INTERNAL).
func NewServer(logger *slog.Logger, opts ...ServerOption) *Server {
	cfg := serverConfig{creds: defaultCredentials()}
	for _, o := range opts {
		o(&cfg)
	}
	// Outermost, the call observer (counts, access log, panic recovery) sees
	// every call as answered; innermost, the authorization check, whose refusals
	// the interceptors given see.
	obs := newCallObserver(logger, cfg.meterProvider())
	unary := append([]grpc.UnaryServerInterceptor{obs.unary}, cfg.unary...)
	stream := append([]grpc.StreamServerInterceptor{obs.stream}, cfg.stream...)
	if cfg.authz != nil {
		unary, stream = append(unary, cfg.authz.unary), append(stream, cfg.authz.stream)
	}
	grpcOpts := append([]grpc.ServerOption{
		grpc.Creds(inProcessCredentials{cfg.creds}),
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelOptions...)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout,
			MaxConnectionAge: cmp.Or(cfg.maxAge, MaxConnectionAge), MaxConnectionAgeGrace: cmp.Or(cfg.maxAgeGrace, MaxConnectionAgeGrace)}),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinClientPing, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}, cfg.extra...)
	s := &Server{
		GRPC:      grpc.NewServer(grpcOpts...),
		Health:    health.NewServer(),
		logger:    logger,
		inProcess: newInProcessListener(),
		// Plaintext, health only: no reflection, no service, no identity.
		healthOnly: grpc.NewServer(grpc.Creds(defaultCredentials()),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinClientPing, PermitWithoutStream: true})),
	}
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	healthpb.RegisterHealthServer(s.healthOnly, s.Health)
	reflection.Register(s.GRPC)
	return s
}

// ServeHealth has Serve also answer grpc.health.v1, and nothing else, in
// plaintext on l (HEALTH_ADDR), with the same statuses as the main port; it
// stops after the main port has drained. Call it before Serve.
func (s *Server) ServeHealth(l net.Listener) { s.healthListener = l }

// ServerOption changes how NewServer builds a server.
type ServerOption func(*serverConfig)

type serverConfig struct {
	creds  credentials.TransportCredentials
	authz  *authorizer // Security.ServerOptions
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
	extra  []grpc.ServerOption
	meters metric.MeterProvider // WithMeterProvider; nil: the global one

	// maxAge and maxAgeGrace replace MaxConnectionAge and its grace when not 0:
	// only tests, which cannot wait half an hour, set them.
	maxAge, maxAgeGrace time.Duration
}

// WithServerCredentials serves with creds instead of the default credentials.
func WithServerCredentials(creds credentials.TransportCredentials) ServerOption {
	return func(c *serverConfig) { c.creds = creds }
}

// WithServerInterceptors runs unary and stream interceptors, in order, around
// every call, outside the authorization check of Security.ServerOptions (they
// see the calls it refuses, with its status).
func WithServerInterceptors(unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) ServerOption {
	return func(c *serverConfig) {
		c.unary = append(c.unary, unary...)
		c.stream = append(c.stream, stream...)
	}
}

// WithGRPCServerOptions adds options of grpc-go itself (limits, for example).
func WithGRPCServerOptions(opts ...grpc.ServerOption) ServerOption {
	return func(c *serverConfig) { c.extra = append(c.extra, opts...) }
}

// Serve serves on l, and DialInProcess's connections, until ctx is done, then
// shuts down: health NOT_SERVING, stop taking new calls, let in-flight calls
// finish for up to drain, then hard-stop (cancelling whatever is left, whose
// chunks the coordinator re-dispatches).
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	drain = cmp.Or(drain, DefaultDrain)
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	errc := make(chan error, 1)
	go func() { errc <- s.GRPC.Serve(l) }()
	go func() {
		if err := s.GRPC.Serve(s.inProcess); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.logger.Error("in-process connections no longer served", "error", err.Error())
		}
	}()
	defer s.inProcess.Close()
	if s.healthListener != nil {
		s.logger.InfoContext(ctx, "serving health", "addr", s.healthListener.Addr().String())
		go func() {
			if err := s.healthOnly.Serve(s.healthListener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.logger.Error("health port stopped", "error", err.Error())
			}
		}()
		defer s.healthOnly.Stop()
	}
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
