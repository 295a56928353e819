package dispatch

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// ChunkRequest asks a worker to process one chunk under one attempt token.
type ChunkRequest struct {
	RunID     int64
	ClosingID int64
	Index     int
	Token     int64
}

// ChunkResult is what a worker reports of a chunk it processed.
type ChunkResult struct {
	// FromLedger is set when the chunk had already been committed by this same
	// attempt (a repeated delivery) and the worker answered from the ledger.
	FromLedger bool
}

// ErrorKind says how a ProcessChunk call failed, in words the engine decides with.
type ErrorKind int

const (
	// KindOther is any other failure: the worker is gone, the connection was lost,
	// the worker hit a transient database error. Worth another attempt elsewhere.
	KindOther ErrorKind = iota
	// KindBusy: the worker had no room for the chunk.
	KindBusy
	// KindStale: the attempt had been superseded and the worker's commit was refused.
	KindStale
	// KindDataError: the chunk's data cannot be consolidated, or the database
	// refused it for good (a permanent SQLSTATE); retrying cannot help.
	KindDataError
	// KindTimeout: the call passed its deadline.
	KindTimeout
	// KindNotStarted: the call never reached a worker: there was no connection to
	// it (refused, unreachable, still connecting when the deadline came). The
	// worker did nothing.
	KindNotStarted
	// KindWorkerDied: the call reached a worker and its connection broke before
	// the worker answered (UNAVAILABLE with a peer and no answer): the worker died
	// holding the chunk (killed, out of memory). Worth another attempt; a chunk
	// whose workers die on every attempt is split (docs/lifecycle.md#how-a-run-ends).
	KindWorkerDied
	// KindDatabaseRefused: the database refused the chunk for a reason that is not
	// its data's (a privilege not granted, a missing column: a permanent SQLSTATE
	// outside the data classes, grpcx.IsDatabaseRefused). Every chunk would meet
	// it: the run ends.
	KindDatabaseRefused
)

func (k ErrorKind) String() string {
	switch k {
	case KindBusy:
		return "busy"
	case KindStale:
		return "stale"
	case KindDataError:
		return "data_error"
	case KindTimeout:
		return "timeout"
	case KindNotStarted:
		return "not_started"
	case KindWorkerDied:
		return "worker_died"
	case KindDatabaseRefused:
		return "database_refused"
	default:
		return "other"
	}
}

// CallError is a failed ProcessChunk call.
type CallError struct {
	Kind ErrorKind
	// Msg is the worker's message (ids only, never SQL or personal data).
	Msg string
	// Code names the transport's status, for logs only.
	Code string
}

func (e *CallError) Error() string { return e.Msg }

// callError turns an error of a ProcessChunk call into a *CallError: the one place
// that maps gRPC status codes to kinds. reached says whether the call got as far
// as a connection to the worker: gRPC names the peer (grpc.Peer) only once the
// call has a stream on a connection, so a call without one never reached a
// worker. Such a call failing UNAVAILABLE (no connection: refused, unreachable)
// or DEADLINE_EXCEEDED (the deadline came while connecting) is not started;
// other codes keep their kind. UNAVAILABLE with a peer means the connection broke
// during the call: the worker may have been working on the chunk. answered says
// whether the worker's handler answered (grpcx.Answered): UNAVAILABLE with a peer
// and no answer is the worker dying under the call (KindWorkerDied); with one, the
// worker's own report (a transient database error, say).
func callError(err error, reached, answered bool) *CallError {
	st := status.Convert(err)
	kind := kindOf(st.Code())
	switch {
	case !reached && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded):
		kind = KindNotStarted
	case reached && !answered && st.Code() == codes.Unavailable:
		kind = KindWorkerDied
	case grpcx.IsDatabaseRefused(st):
		kind = KindDatabaseRefused
	}
	return &CallError{Kind: kind, Msg: st.Message(), Code: st.Code().String()}
}

// kindOf maps the status code of a failed ProcessChunk call that reached a worker
// to its kind.
func kindOf(c codes.Code) ErrorKind {
	switch c {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound:
		return KindDataError
	case codes.Aborted:
		return KindStale
	case codes.DeadlineExceeded:
		return KindTimeout
	case codes.ResourceExhausted:
		return KindBusy
	default:
		return KindOther
	}
}
