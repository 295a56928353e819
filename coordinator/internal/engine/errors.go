package engine

import "fmt"

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

// Error is an engine error with a message fit for the caller: it names the
// culprit (field, id, state, dependency) and never carries SQL.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
