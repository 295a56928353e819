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
	// KindNotStarted: no worker took the chunk on: there was no connection to it
	// (refused, unreachable, still connecting when the deadline came), or the
	// worker died before it took one of its slots for the chunk. The worker did
	// nothing with it.
	KindNotStarted
	// KindWorkerDied: the worker had taken the chunk on and its connection broke
	// before it answered (UNAVAILABLE, held, no answer): the worker died holding
	// the chunk (killed, out of memory). Worth another attempt; a chunk
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

// callReach is how far a failed ProcessChunk call got.
type callReach struct {
	// Reached: the call got as far as a connection to the worker. gRPC names the
	// peer (grpc.Peer) only once the call has a stream on a connection.
	Reached bool
	// Held: the worker had taken one of its slots for the chunk (grpcx.Held, the
	// header it sends then): it was working on it.
	Held bool
	// Answered: the worker's handler answered (grpcx.Answered, its trailer).
	Answered bool
}

// callError turns an error of a ProcessChunk call into a *CallError: the one place
// that maps gRPC status codes to kinds. A call that never reached a worker and
// failed UNAVAILABLE (no connection: refused, unreachable) or DEADLINE_EXCEEDED
// (the deadline came while connecting) is not started. UNAVAILABLE after reaching
// it, with no answer, means the connection broke during the call: the worker died
// under it. Only a worker that held the chunk died holding it (KindWorkerDied, a
// count toward splitting the chunk); one that died before taking it on (the call
// waiting for a slot another chunk held, or not yet read) did nothing with it, and
// the call is not started (docs/lifecycle.md#how-a-run-ends). With an answer,
// UNAVAILABLE is the worker's own report (a transient database error, say).
func callError(err error, r callReach) *CallError {
	st := status.Convert(err)
	kind := kindOf(st.Code())
	switch {
	case !r.Reached && (st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded):
		kind = KindNotStarted
	case r.Reached && !r.Answered && st.Code() == codes.Unavailable:
		kind = KindNotStarted
		if r.Held {
			kind = KindWorkerDied
		}
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
