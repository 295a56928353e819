package domain

// ChunkStatus is the status of a chunk in the ledger (consolidation_chunk.status).
type ChunkStatus string

const (
	ChunkPending   ChunkStatus = "pending"
	ChunkRunning   ChunkStatus = "running"
	ChunkSucceeded ChunkStatus = "succeeded"
	ChunkFailed    ChunkStatus = "failed"
	// ChunkSplit: the chunk failed for a reason that may be one employee's (a data
	// error, workers dying on it) and was split in two chunks that replace it
	// (docs/lifecycle.md#how-a-run-ends); its own employees are counted in those.
	ChunkSplit ChunkStatus = "split"
	// ChunkCancelled: the run ended before the chunk did (a cancel, the time
	// limit, a permanent database error): it was never tried, or its attempt was
	// abandoned and fenced off. It neither succeeded nor failed, and none of its
	// rows is kept; a retry_failed run does not take it (only a full run follows an
	// interrupted one).
	ChunkCancelled ChunkStatus = "cancelled"
)

// Ended reports whether a chunk has reached its final status.
func (s ChunkStatus) Ended() bool {
	return s == ChunkSucceeded || s == ChunkFailed || s == ChunkSplit || s == ChunkCancelled
}

// Done reports whether a chunk was worked to an end of its own (succeeded,
// failed, or split in halves): what progress counts. A cancelled chunk has ended
// but is not done.
func (s ChunkStatus) Done() bool { return s == ChunkSucceeded || s == ChunkFailed || s == ChunkSplit }

// Outcome is how one dispatch attempt of a chunk ended
// (consolidation_chunk_attempt.outcome).
type Outcome string

const (
	// OutcomeCommitted: the attempt wrote the chunk's rows and marked it succeeded.
	OutcomeCommitted Outcome = "committed"
	// OutcomeFromLedger: the attempt found the chunk already committed by itself
	// (a repeated delivery) and answered from the ledger.
	OutcomeFromLedger Outcome = "from_ledger"
	// OutcomeStale: the attempt had been superseded (re-dispatch, cancel, end of
	// the run) and its commit was refused by the fence.
	OutcomeStale Outcome = "stale"
	// OutcomeDataError: the chunk's data cannot be consolidated (an amount that
	// does not fit, say); retrying cannot help.
	OutcomeDataError Outcome = "data_error"
	// OutcomeTimeout: the call passed its hard deadline.
	OutcomeTimeout Outcome = "timeout"
	// OutcomeBusy: the worker had no room for the chunk. It did nothing, and the
	// attempt does not count toward the chunk's limit.
	OutcomeBusy Outcome = "busy"
	// OutcomeNeverStarted: no worker took the chunk on: the call never reached one
	// (no connection to it: refused, unreachable, still connecting), or its worker
	// died before taking one of its slots for the chunk. Like a busy reply, it does
	// not count toward the chunk's limit.
	OutcomeNeverStarted Outcome = "never_started"
	// OutcomeWorkerDied: the worker had taken the chunk on (a slot) and its
	// connection broke before any answer: the worker died (killed, out of memory)
	// holding the chunk.
	OutcomeWorkerDied Outcome = "worker_died"
	// OutcomeError: any other failure (worker gone, connection lost, database
	// error on the worker); worth another attempt.
	OutcomeError Outcome = "error"
	// OutcomeAbandoned: the run stopped (cancel, time limit, shutdown) while the
	// attempt was in flight.
	OutcomeAbandoned Outcome = "abandoned"
)
