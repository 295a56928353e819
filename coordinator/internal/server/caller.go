package server

import (
	"context"
	"net"

	"google.golang.org/grpc/peer"
)

// callerKey names the caller of an RPC for per-caller limits. For now it is the
// host of the peer's address (a caller's connections differ only in port);
// callers behind one proxy or NAT share it.
func callerKey(ctx context.Context) string {
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
