package server

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// The audit log: one info line, "audit", per call that changes results
// (Consolidate, CancelConsolidation) or reads employee data (ExplainEmployee,
// ExportConsolidation, ListConsolidations, and GetConsolidation when its answer
// lists failed employees), whatever its outcome: the method, the caller's
// identity ("" without TLS), the closing and consolidation ids as far as they are
// known, the rows the answer held and the status code. grpcx runs the
// interceptors outside the authorization check, so calls that check refuses are
// logged too (PermissionDenied, Unauthenticated).

// AuditInterceptor audits the unary calls.
func AuditInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !auditedUnary[info.FullMethod] {
			return handler(ctx, req)
		}
		resp, err := handler(ctx, req)
		a := auditOf(req, resp)
		if info.FullMethod == consolidationv1.ConsolidationService_GetConsolidation_FullMethodName && a.rows == 0 {
			return resp, err // no employee in the answer: a progress read
		}
		audit(ctx, logger, info.FullMethod, a, err)
		return resp, err
	}
}

// AuditStreamInterceptor audits ExportConsolidation, counting the employees sent.
func AuditStreamInterceptor(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != consolidationv1.ConsolidationService_ExportConsolidation_FullMethodName {
			return handler(srv, ss)
		}
		counted := &countingStream{ServerStream: ss}
		err := handler(srv, counted)
		audit(ss.Context(), logger, info.FullMethod, audited{closingID: counted.closingID, rows: counted.rows}, err)
		return err
	}
}

var auditedUnary = map[string]bool{
	consolidationv1.ConsolidationService_Consolidate_FullMethodName:         true,
	consolidationv1.ConsolidationService_CancelConsolidation_FullMethodName: true,
	consolidationv1.ConsolidationService_ExplainEmployee_FullMethodName:     true,
	consolidationv1.ConsolidationService_ListConsolidations_FullMethodName:  true,
	consolidationv1.ConsolidationService_GetConsolidation_FullMethodName:    true,
}

// audited is what an audit line says of a call besides its method and code.
type audited struct {
	closingID, runID int64
	rows             int
}

func audit(ctx context.Context, logger *slog.Logger, method string, a audited, err error) {
	identity, _ := grpcx.CallerIdentity(ctx)
	logger.InfoContext(ctx, "audit", "method", method, "identity", identity, "closing_id", a.closingID,
		"consolidation_id", a.runID, "rows", a.rows, "code", status.Code(err).String())
}

// auditOf is what a unary call named or was answered with: its closing and
// consolidation ids (0 when unknown) and the rows of employee data (or, for
// ListConsolidations, runs) the answer held.
func auditOf(req, resp any) audited {
	var a audited
	switch r := req.(type) {
	case *consolidationv1.ConsolidateRequest:
		a.closingID = r.GetClosingId()
		if out, ok := resp.(*consolidationv1.ConsolidateResponse); ok {
			a.runID = out.GetConsolidationId()
		}
	case *consolidationv1.CancelConsolidationRequest:
		a.closingID, a.runID = r.GetClosingId(), r.GetConsolidationId()
		if out, ok := resp.(*consolidationv1.CancelConsolidationResponse); ok && out.GetConsolidation() != nil {
			a.closingID, a.runID = out.GetConsolidation().GetClosingId(), out.GetConsolidation().GetConsolidationId()
		}
	case *consolidationv1.GetConsolidationRequest:
		if out, ok := resp.(*consolidationv1.GetConsolidationResponse); ok && out.GetConsolidation() != nil {
			c := out.GetConsolidation()
			a.closingID, a.runID, a.rows = c.GetClosingId(), c.GetConsolidationId(), len(c.GetFailedEmployees())
		}
	case *consolidationv1.ExplainEmployeeRequest:
		a.closingID = r.GetClosingId()
		if out, ok := resp.(*consolidationv1.ExplainEmployeeResponse); ok && out != nil {
			a.rows = 1
			a.runID = out.GetStored().GetConsolidationId()
		}
	case *consolidationv1.ListConsolidationsRequest:
		a.closingID = r.GetClosingId()
		if out, ok := resp.(*consolidationv1.ListConsolidationsResponse); ok {
			a.rows = len(out.GetConsolidations())
		}
	}
	return a
}

// countingStream counts the employees an ExportConsolidation stream sends, and
// notes the closing its request names.
type countingStream struct {
	grpc.ServerStream
	closingID int64
	rows      int
}

func (s *countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if r, ok := m.(*consolidationv1.ExportConsolidationRequest); ok && err == nil {
		s.closingID = r.GetClosingId()
	}
	return err
}

func (s *countingStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if r, ok := m.(*consolidationv1.ExportConsolidationResponse); ok && err == nil {
		s.rows += len(r.GetEmployees())
	}
	return err
}
