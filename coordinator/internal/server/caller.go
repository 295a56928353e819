package server

import (
	"context"
	"net"

	"google.golang.org/grpc/peer"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// callerKey names the caller of an RPC for per-caller limits: its identity
// (grpcx.CallerIdentity, docs/security-model.md) when the services run on mTLS, else the host
// of the peer's address (a caller's connections differ only in port; callers
// behind one proxy or NAT share it).
func callerKey(ctx context.Context) string {
	if id, ok := grpcx.CallerIdentity(ctx); ok {
		return "identity:" + id
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}
