package grpcx

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// PolicyRecheck is how often a server looks at AUTHZ_POLICY_FILE again: a
// changed policy applies from the next call after that, without a restart.
const PolicyRecheck = time.Second

// healthService is always open: kubelet probes and the coordinator's view of its
// workers need no identity.
var healthService = "/" + healthpb.Health_ServiceDesc.ServiceName + "/"

// authorizer decides every call of a server on mTLS: health is open; any other
// method needs a caller identity (UNAUTHENTICATED without one) that the policy
// allows (PERMISSION_DENIED otherwise). With no policy file nothing but health is
// open.
type authorizer struct {
	logger *slog.Logger
	file   string // "" : the empty policy

	mu      sync.Mutex
	policy  Policy
	data    []byte
	checked time.Time
}

// newAuthorizer reads the policy file, when one is named; an unreadable or
// invalid file is an error here, and later only a warning (the last good policy
// stays).
func newAuthorizer(logger *slog.Logger, file string) (*authorizer, error) {
	a := &authorizer{logger: logger, file: file}
	if file == "" {
		return a, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if a.policy, err = ParsePolicy(data); err != nil {
		return nil, err
	}
	a.data, a.checked = data, time.Now()
	return a, nil
}

// current is the policy in force: the file is read again when PolicyRecheck has
// passed since it last was, and parsed when its bytes changed.
func (a *authorizer) current() Policy {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.file == "" || time.Since(a.checked) < PolicyRecheck {
		return a.policy
	}
	a.checked = time.Now()
	data, err := os.ReadFile(a.file)
	if err != nil {
		a.logger.Warn("authorization policy not reloaded; the last one read stays", "file", a.file, "error", err.Error())
		return a.policy
	}
	if bytes.Equal(data, a.data) {
		return a.policy
	}
	p, err := ParsePolicy(data)
	if err != nil {
		a.logger.Warn("authorization policy not reloaded; the last one read stays", "file", a.file, "error", err.Error())
		return a.policy
	}
	a.policy, a.data = p, data
	a.logger.Info("authorization policy reloaded", "file", a.file, "rules", len(p.rules))
	return p
}

// authorize is nil when the call may go on, else its status.
func (a *authorizer) authorize(ctx context.Context, fullMethod string) error {
	if strings.HasPrefix(fullMethod, healthService) {
		return nil
	}
	identity, ok := CallerIdentity(ctx)
	if !ok {
		a.logger.WarnContext(ctx, "call refused", "method", fullMethod, "code", codes.Unauthenticated.String())
		return status.Error(codes.Unauthenticated, "no verified client certificate identity")
	}
	if !a.current().Allows(identity, fullMethod) {
		a.logger.WarnContext(ctx, "call refused", "method", fullMethod, "identity", identity,
			"code", codes.PermissionDenied.String())
		return status.Errorf(codes.PermissionDenied, "%s may not call %s", identity, fullMethod)
	}
	return nil
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
