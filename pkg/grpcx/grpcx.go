// Package grpcx is the service's gRPC transport, in one place: it builds the
// servers of both binaries (NewServer) and dials every client (Dial), each with
// the transport credentials, interceptors and OpenTelemetry stats handler given
// here. A transport change (mTLS, keepalive, tracing) is a change to this package.
package grpcx

import (
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// defaultCredentials are the transport credentials of every server and client
// that is given none: plaintext for now (the cluster network is trusted). This
// is the one place that says so.
func defaultCredentials() credentials.TransportCredentials { return insecure.NewCredentials() }
