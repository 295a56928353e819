package store

import "github.com/nominacl/consolidation/pkg/domain"

// The engine's ledger seam (coordinator/internal/engine, docs/architecture.md,
// "The ledger seam") takes its fenced operations' arguments as named structs, so
// a run id, an epoch, a chunk index and an attempt token can never be passed in
// each other's place.

// RunLease names a run and the lease epoch its caller holds (AcquireLease): the
// fence of every statement a driver makes.
type RunLease struct {
	RunID int64
	Epoch int64
}

// DispatchChunkParams hands chunk Index of the leased run to a new attempt,
// Token, on Worker (DispatchChunk).
type DispatchChunkParams struct {
	RunLease
	Index  int
	Token  int64
	Worker string
}

// EndAttemptParams records how attempt Attempt of chunk Index ended (EndAttempt).
type EndAttemptParams struct {
	RunID   int64
	Index   int
	Attempt int
	Outcome domain.Outcome
	Error   string
}

// FailChunkParams fails chunk Index for good while Token is its attempt
// (FailChunkWith).
type FailChunkParams struct {
	RunLease
	Index   int
	Token   int64
	Failure ChunkFailure
}

// SplitChunkParams splits chunk Index in two while Token is its attempt
// (SplitChunk), Reason and WorkerDied recorded on it.
type SplitChunkParams struct {
	RunLease
	Index      int
	Token      int64
	Reason     string
	WorkerDied bool
}
