package grpcx

import (
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Keepalive of every client of Dial: a connection on which nothing has been heard
// for ClientKeepaliveTime (grpc-go's minimum) is pinged, with or without calls in
// flight, and closed when the ping is not answered within ClientKeepaliveTimeout,
// failing its calls: a coordinator notices a worker that vanished without closing
// its connections.
const (
	ClientKeepaliveTime    = 10 * time.Second
	ClientKeepaliveTimeout = 5 * time.Second
)

// Dial makes a client connection to target (grpc.NewClient: nothing is dialled
// until the first call or Connect). It uses the default credentials and no
// interceptors unless opts say otherwise, always with the OpenTelemetry stats
// handler, and keepalive (ClientKeepaliveTime), which the servers of NewServer
// permit.
func Dial(target string, opts ...DialOption) (*grpc.ClientConn, error) {
	cfg := dialConfig{creds: defaultCredentials()}
	for _, o := range opts {
		o(&cfg)
	}
	if rc, ok := cfg.creds.(*reloadingCredentials); ok && (cfg.serverName != "" || cfg.peerID != "") {
		rc = rc.Clone().(*reloadingCredentials)
		rc.serverName, rc.ids, rc.peerID = cfg.serverName, cfg.peerIDs, cfg.peerID
		cfg.creds = rc
	}
	return grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(cfg.creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelOptions...)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: ClientKeepaliveTime, Timeout: ClientKeepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithChainUnaryInterceptor(cfg.unary...),
		grpc.WithChainStreamInterceptor(cfg.stream...),
	}, cfg.extra...)...)
}

// DialOption changes how Dial connects.
type DialOption func(*dialConfig)

type dialConfig struct {
	creds      credentials.TransportCredentials
	serverName string // WithTLSServerName
	peerIDs    IdentityPolicy
	peerID     string // WithPeerIdentity
	unary      []grpc.UnaryClientInterceptor
	stream     []grpc.StreamClientInterceptor
	extra      []grpc.DialOption
}

// WithDialCredentials connects with creds instead of the default credentials.
func WithDialCredentials(creds credentials.TransportCredentials) DialOption {
	return func(c *dialConfig) { c.creds = creds }
}

// WithClientInterceptors runs unary and stream interceptors, in order, around
// every call.
func WithClientInterceptors(unary []grpc.UnaryClientInterceptor, stream []grpc.StreamClientInterceptor) DialOption {
	return func(c *dialConfig) {
		c.unary = append(c.unary, unary...)
		c.stream = append(c.stream, stream...)
	}
}

// WithGRPCDialOptions adds options of grpc-go itself (reconnect backoff, for
// example).
func WithGRPCDialOptions(opts ...grpc.DialOption) DialOption {
	return func(c *dialConfig) { c.extra = append(c.extra, opts...) }
}
