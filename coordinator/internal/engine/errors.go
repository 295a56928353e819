package engine

import (
	"fmt"
	"strconv"
)

// Kind classifies the errors callers of the engine can act on; the gRPC edge maps
// each to a status code in one place.
type Kind int

const (
	KindInternal Kind = iota
	KindInvalidArgument
	KindNotFound
	KindFailedPrecondition
	KindAlreadyExists
	KindUnavailable
)

// ErrorDomain is the domain of every ErrorInfo the service sends.
const ErrorDomain = "consolidation.v1"

// Reasons of the engine's errors (google.rpc.ErrorInfo.reason): stable words a
// backend caller may switch on, where the message is for people.
const (
	ReasonInvalidArgument       = "INVALID_ARGUMENT"
	ReasonClosingNotFound       = "CLOSING_NOT_FOUND"
	ReasonRunNotFound           = "CONSOLIDATION_NOT_FOUND"
	ReasonRunInProgress         = "RUN_IN_PROGRESS"
	ReasonEstadoMayNotStart     = "ESTADO_MAY_NOT_START"
	ReasonEstadoChanged         = "ESTADO_CHANGED"
	ReasonRUTsRefused           = "RUTS_REFUSED"
	ReasonNothingToRetry        = "NOTHING_TO_RETRY"
	ReasonRunEnded              = "CONSOLIDATION_ENDED"
	ReasonDependencyUnavailable = "DEPENDENCY_UNAVAILABLE"
	ReasonEmployeeNotFound      = "EMPLOYEE_NOT_FOUND"
	ReasonRowsChanging          = "ROWS_CHANGING"
	ReasonAmountOutOfRange      = "AMOUNT_OUT_OF_RANGE"
	ReasonClosingTooLarge       = "CLOSING_TOO_LARGE"
)

// Violation types of a PreconditionFailure.
const (
	ViolationEstado      = "ESTADO"
	ViolationRUTInvalid  = "RUT_INVALID"
	ViolationRUTRepeated = "RUT_REPEATED"
	ViolationNoRun       = "NO_RUN_TO_RETRY"
	ViolationNoFailed    = "NO_FAILED_CHUNKS"
	ViolationAmount      = "AMOUNT_OUT_OF_RANGE"
	ViolationTooLarge    = "CLOSING_TOO_LARGE"
)

// Error is an engine error with a message fit for the caller: it names the
// culprit (field, id, state, dependency) and never carries SQL. Its details are
// the same facts typed, for a program (the gRPC edge sends them as
// google.rpc.ErrorInfo, BadRequest, PreconditionFailure and ResourceInfo): a
// caller never parses Msg.
type Error struct {
	Kind Kind
	Msg  string

	// Reason and Metadata are the ErrorInfo ("": none).
	Reason   string
	Metadata map[string]string
	// Fields are the BadRequest field violations of an invalid argument.
	Fields []FieldViolation
	// Preconditions are the PreconditionFailure violations.
	Preconditions []PreconditionViolation
	// Resource is the ResourceInfo of what was not found (nil: none).
	Resource *Resource
}

// FieldViolation is a request field and what is wrong with it.
type FieldViolation struct{ Field, Description string }

// PreconditionViolation is a precondition that failed: its Type (Violation…),
// Subject ("<table>/<row id>") and Description.
type PreconditionViolation struct{ Type, Subject, Description string }

// Resource names a resource: its Type (a table) and Name (an id).
type Resource struct{ Type, Name string }

func (e *Error) Error() string { return e.Msg }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// with sets the error's ErrorInfo.
func (e *Error) with(reason string, metadata map[string]string) *Error {
	e.Reason, e.Metadata = reason, metadata
	return e
}

// InvalidArgument is the error of a request field with a bad value: the message
// (formatted, fit for the caller) is also the field violation's description.
func InvalidArgument(field, format string, args ...any) *Error {
	e := errorf(KindInvalidArgument, format, args...)
	e.Fields = []FieldViolation{{Field: field, Description: e.Msg}}
	return e.with(ReasonInvalidArgument, map[string]string{"field": field})
}

// notFound is the error of a closing or a run that does not exist.
func notFound(reason, table string, id int64, format string, args ...any) *Error {
	e := errorf(KindNotFound, format, args...)
	e.Resource = &Resource{Type: table, Name: strconv.FormatInt(id, 10)}
	key := "closing_id"
	if table == "consolidation_run" {
		key = "consolidation_id"
	}
	return e.with(reason, map[string]string{key: strconv.FormatInt(id, 10)})
}

// closingNotFound is the error of a closing that does not exist.
func closingNotFound(id int64, format string, args ...any) *Error {
	return notFound(ReasonClosingNotFound, "nomina_cierrenomina", id, format, args...)
}

// runNotFound is the error of a consolidation that does not exist.
func runNotFound(id int64) *Error {
	return notFound(ReasonRunNotFound, "consolidation_run", id, "consolidation %d does not exist", id)
}

// runInProgress is the refusal of a start while the closing has a run in progress.
func runInProgress(closingID, runID int64) *Error {
	return errorf(KindAlreadyExists, "closing %d already has consolidation %d in progress", closingID, runID).
		with(ReasonRunInProgress, ids(closingID, runID))
}

// unavailable is the error of a dependency that cannot be reached: postgresql,
// redis or workers.
func unavailable(dependency, msg string) *Error {
	return (&Error{Kind: KindUnavailable, Msg: msg}).with(ReasonDependencyUnavailable, map[string]string{"dependency": dependency})
}

// failedPrecondition is a refusal with one precondition violation about a row.
func failedPrecondition(reason string, metadata map[string]string, v PreconditionViolation, format string, args ...any) *Error {
	e := errorf(KindFailedPrecondition, format, args...).with(reason, metadata)
	if v.Description == "" {
		v.Description = e.Msg
	}
	e.Preconditions = []PreconditionViolation{v}
	return e
}

// ids is the metadata naming a closing and, when not 0, a run.
func ids(closingID, runID int64) map[string]string {
	m := map[string]string{"closing_id": strconv.FormatInt(closingID, 10)}
	if runID != 0 {
		m["consolidation_id"] = strconv.FormatInt(runID, 10)
	}
	return m
}

// subject names a row of a table, as a PreconditionViolation's subject.
func subject(table string, id int64) string { return table + "/" + strconv.FormatInt(id, 10) }
