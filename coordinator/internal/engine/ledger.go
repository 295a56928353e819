package engine

import (
	"context"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// ledger is what the engine needs of the durable record of runs: the run rows,
// the chunk ledger and its attempts. pgStore implements it with pkg/store, and
// ledgertest.Ledger in memory for the drive loop's tests; one conformance suite
// (ledger_conformance_test.go) runs the same cases against both
// (docs/architecture.md, "The ledger seam"). The operations fenced by a run's
// lease take a store.RunLease, and those naming a chunk and an attempt a
// …Params struct, so that ids, epochs, indexes and tokens cannot be swapped.
type ledger interface {
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// AcquireLease, RenewLease and ReleaseLease are the run's lease (docs/lifecycle.md#more-than-one-coordinator): the replica holding it drives the run, fenced by its epoch.
	AcquireLease(ctx context.Context, runID int64, owner string, ttl time.Duration) (epoch int64, ok bool, err error)
	RenewLease(ctx context.Context, l store.RunLease, ttl time.Duration) (store.LeaseState, error)
	ReleaseLease(ctx context.Context, l store.RunLease) (bool, error)

	StartRun(ctx context.Context, nr store.NewRun) (int64, error)
	GetRun(ctx context.Context, runID int64) (store.Run, error)
	RunTraceparent(ctx context.Context, runID int64) (string, error)
	ActiveRun(ctx context.Context, closingID int64) (int64, bool, error)
	RunByRequest(ctx context.Context, closingID int64, requestID string) (int64, bool, error)
	LatestRunID(ctx context.Context, closingID int64) (int64, error)
	UnfinishedRuns(ctx context.Context) ([]store.UnfinishedRun, error)
	RequestCancel(ctx context.Context, runID int64, by string) (bool, error)
	// CheckControlTotals adds the run's totals up; split says in two halves at
	// once (a large run: docs/benchmarks.md, "The serial steps of a large closing").
	CheckControlTotals(ctx context.Context, runID int64, split bool) (store.ControlTotals, error)
	FinishRun(ctx context.Context, l store.RunLease, o store.RunEnd) (bool, error)
	AbortRun(ctx context.Context, l store.RunLease, errText string) (bool, error)
	GetMetrics(ctx context.Context, closingID int64) (store.Metrics, error)
	ClosingTotals(ctx context.Context, closingID int64) (store.WriteSummary, error)
	// ClaimAfterEnd, EndAfterEnd and RunsAwaitingAfterEnd make the steps after a
	// run's end happen once, by whichever replica sees the end (afterEnd).
	ClaimAfterEnd(ctx context.Context, runID int64, owner string, ttl time.Duration) (bool, error)
	EndAfterEnd(ctx context.Context, runID int64, owner string, done bool) (bool, error)
	RunsAwaitingAfterEnd(ctx context.Context, limit int) ([]int64, error)

	Chunks(ctx context.Context, runID int64, limit int, statuses ...domain.ChunkStatus) ([]store.Chunk, error)
	GetChunk(ctx context.Context, runID int64, index int) (store.Chunk, error)
	DispatchChunk(ctx context.Context, p store.DispatchChunkParams) (attempt int, ok bool, err error)
	EndAttempt(ctx context.Context, p store.EndAttemptParams) error
	FailChunk(ctx context.Context, p store.FailChunkParams) (bool, error)
	SplitChunk(ctx context.Context, p store.SplitChunkParams) ([]store.Chunk, bool, error)
	FailedEmployees(ctx context.Context, runID int64, limit int, workerDied bool) ([]store.FailedEmployee, error)
}

// closings is what the engine reads of a closing to check and plan a run.
// pgStore implements it with pkg/store.
type closings interface {
	GetClosing(ctx context.Context, id int64) (store.Closing, error)
	CheckRUTs(ctx context.Context, closingID int64, limit int) (store.RUTProblems, error)
	CountUnmatchedNovedades(ctx context.Context, closingID int64) (int, error)
	CountEmployees(ctx context.Context, closingID int64) (int, error)
	EachEmployee(ctx context.Context, closingID int64, costs bool, fn func(store.EmployeeCost)) error
}

// records is what the engine reads for the analyst and the run history (list,
// explain, export): read-only. pgStore implements it with pkg/store.
type records interface {
	ListRuns(ctx context.Context, f store.RunFilter, after store.RunCursor, limit int) ([]store.Run, error)
	LibroEmployeeOf(ctx context.Context, closingID int64, canonRUT string) (int64, error)
	ReadChunk(ctx context.Context, c store.Closing, firstID, lastID int64) (store.ChunkSources, error)
	StoredRecordOf(ctx context.Context, closingID int64, canonRUT string) (store.StoredRecord, bool, error)
	AbsenceTypes(ctx context.Context, ids []int64) (map[int64]string, error)
	ReadStoredRecords(ctx context.Context, closingID int64, afterRUT string, limit int) ([]store.StoredRecord, error)
	// The dashboard's reads (dashboard.go).
	ChunkMap(ctx context.Context, runID int64) ([]store.ChunkCell, error)
	Throughput(ctx context.Context, since time.Time, bucket time.Duration) ([]store.ThroughputPoint, error)
	WorkersActivity(ctx context.Context, since time.Time) ([]store.WorkerActivity, error)
}
