package server

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// AuditInterceptor logs one line per mutating call (Consolidate,
// CancelConsolidation), whatever its outcome: the method, the caller's identity
// ("" without TLS), the closing and consolidation ids as far as they are known,
// and the status code. grpcx runs it outside the authorization check, so calls
// that check refuses are logged too (PermissionDenied, Unauthenticated).
func AuditInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod != consolidationv1.ConsolidationService_Consolidate_FullMethodName &&
			info.FullMethod != consolidationv1.ConsolidationService_CancelConsolidation_FullMethodName {
			return handler(ctx, req)
		}
		resp, err := handler(ctx, req)
		identity, _ := grpcx.CallerIdentity(ctx)
		closingID, runID := auditedIDs(req, resp)
		logger.InfoContext(ctx, "audit", "method", info.FullMethod, "identity", identity,
			"closing_id", closingID, "consolidation_id", runID, "code", status.Code(err).String())
		return resp, err
	}
}

// auditedIDs are the closing and consolidation ids a mutating call named or was
// answered with (0 when unknown).
func auditedIDs(req, resp any) (closingID, runID int64) {
	switch r := req.(type) {
	case *consolidationv1.ConsolidateRequest:
		closingID = r.GetClosingId()
		if out, ok := resp.(*consolidationv1.ConsolidateResponse); ok {
			runID = out.GetConsolidationId()
		}
	case *consolidationv1.CancelConsolidationRequest:
		closingID, runID = r.GetClosingId(), r.GetConsolidationId()
		if out, ok := resp.(*consolidationv1.CancelConsolidationResponse); ok && out.GetConsolidation() != nil {
			closingID, runID = out.GetConsolidation().GetClosingId(), out.GetConsolidation().GetConsolidationId()
		}
	}
	return closingID, runID
}
