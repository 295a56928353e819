package server

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
)

var codeOfKind = map[engine.Kind]codes.Code{
	engine.KindInvalidArgument:    codes.InvalidArgument,
	engine.KindNotFound:           codes.NotFound,
	engine.KindFailedPrecondition: codes.FailedPrecondition,
	engine.KindAlreadyExists:      codes.AlreadyExists,
	engine.KindUnavailable:        codes.Unavailable,
}

// errorStatus is the status of an engine error: its kind's code, its message as
// it is, and its typed details as the standard ones (google.rpc.ErrorInfo in
// engine.ErrorDomain, BadRequest, PreconditionFailure, ResourceInfo), so a caller
// acts on the details and never parses the message.
func errorStatus(ee *engine.Error) *status.Status {
	code, ok := codeOfKind[ee.Kind]
	if !ok {
		code = codes.Internal
	}
	st := status.New(code, ee.Msg)
	var details []protoadapt.MessageV1
	if ee.Reason != "" {
		details = append(details, &errdetails.ErrorInfo{Reason: ee.Reason, Domain: engine.ErrorDomain, Metadata: ee.Metadata})
	}
	if len(ee.Fields) > 0 {
		br := &errdetails.BadRequest{}
		for _, f := range ee.Fields {
			br.FieldViolations = append(br.FieldViolations,
				&errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Description})
		}
		details = append(details, br)
	}
	if len(ee.Preconditions) > 0 {
		pf := &errdetails.PreconditionFailure{}
		for _, v := range ee.Preconditions {
			pf.Violations = append(pf.Violations,
				&errdetails.PreconditionFailure_Violation{Type: v.Type, Subject: v.Subject, Description: v.Description})
		}
		details = append(details, pf)
	}
	if r := ee.Resource; r != nil {
		details = append(details, &errdetails.ResourceInfo{ResourceType: r.Type, ResourceName: r.Name, Description: ee.Msg})
	}
	if len(details) == 0 {
		return st
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st // only an OK status refuses details
	}
	return withDetails
}
