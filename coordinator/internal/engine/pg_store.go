package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// pgStore is the ledger and the closings over a PostgreSQL pool: each method
// delegates to the pkg/store function of the same name. A call made with a
// context marked ForReading uses reads instead, when there is one: the
// coordinator's read RPCs then draw on a pool of their own and can never take the
// connections run driving and lease heartbeats need. The end of a run also
// reports to conflicts (nil: not reported) an estado the application wrote mid-run.
// The read pool's statements take a place in share first (readShare), so fewer
// of them run while runs are in flight.
type pgStore struct {
	pool, reads *pgxpool.Pool
	share       *readShare
	conflicts   *estadoConflicts
}

// db is where a call with ctx runs its statements. Writes that need a
// transaction take s.pool directly: no read RPC makes them.
func (s pgStore) db(ctx context.Context) store.Querier {
	if s.reads != nil && isReading(ctx) {
		return sharedReads{pool: s.reads, share: s.share}
	}
	return s.pool
}

var (
	_ ledger   = pgStore{}
	_ closings = pgStore{}
)

// Ping asks the pool that drives runs, also for a read: it says whether
// PostgreSQL answers, which a read pool busy with other reads would not tell
// (one short round trip, on the connections ReservedConns keeps for the API).
func (s pgStore) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s pgStore) AcquireLease(ctx context.Context, runID int64, owner string, ttl time.Duration) (int64, bool, error) {
	return store.AcquireLease(ctx, s.db(ctx), runID, owner, ttl)
}

func (s pgStore) RenewLease(ctx context.Context, l store.RunLease, ttl time.Duration) (store.LeaseState, error) {
	return store.RenewLease(ctx, s.db(ctx), l.RunID, l.Epoch, ttl)
}

func (s pgStore) ReleaseLease(ctx context.Context, l store.RunLease) (bool, error) {
	return store.ReleaseLease(ctx, s.db(ctx), l.RunID, l.Epoch)
}

func (s pgStore) StartRun(ctx context.Context, nr store.NewRun) (int64, error) {
	return store.StartRun(ctx, s.pool, nr)
}

func (s pgStore) GetRun(ctx context.Context, runID int64) (store.Run, error) {
	return store.GetRun(ctx, s.db(ctx), runID)
}

func (s pgStore) RunTraceparent(ctx context.Context, runID int64) (string, error) {
	return store.RunTraceparent(ctx, s.db(ctx), runID)
}

func (s pgStore) ActiveRun(ctx context.Context, closingID int64) (int64, bool, error) {
	return store.ActiveRun(ctx, s.db(ctx), closingID)
}

func (s pgStore) LatestRunID(ctx context.Context, closingID int64) (int64, error) {
	return store.LatestRunID(ctx, s.db(ctx), closingID)
}

func (s pgStore) RunByRequest(ctx context.Context, closingID int64, requestID string) (int64, bool, error) {
	return store.RunByRequest(ctx, s.db(ctx), closingID, requestID)
}

func (s pgStore) ClaimAfterEnd(ctx context.Context, runID int64, owner string, ttl time.Duration) (bool, error) {
	return store.ClaimAfterEnd(ctx, s.pool, runID, owner, ttl)
}

func (s pgStore) EndAfterEnd(ctx context.Context, runID int64, owner string, done bool) (bool, error) {
	return store.EndAfterEnd(ctx, s.pool, runID, owner, done)
}

func (s pgStore) RunsAwaitingAfterEnd(ctx context.Context, limit int) ([]int64, error) {
	return store.RunsAwaitingAfterEnd(ctx, s.pool, limit)
}

func (s pgStore) UnfinishedRuns(ctx context.Context) ([]store.UnfinishedRun, error) {
	return store.UnfinishedRuns(ctx, s.db(ctx))
}

func (s pgStore) RequestCancel(ctx context.Context, runID int64, by string) (bool, error) {
	return store.RequestCancel(ctx, s.pool, runID, by)
}

func (s pgStore) CheckControlTotals(ctx context.Context, runID int64, split bool) (store.ControlTotals, error) {
	return store.CheckControlTotals(ctx, s.db(ctx), runID, split)
}

func (s pgStore) FinishRun(ctx context.Context, l store.RunLease, o store.RunEnd) (bool, error) {
	ended, err := store.EndRun(ctx, s.pool, l.RunID, l.Epoch, o)
	s.conflicts.report(ctx, l.RunID, o.Estado, ended)
	return ended.Finished, err
}

func (s pgStore) AbortRun(ctx context.Context, l store.RunLease, errText string) (bool, error) {
	ended, err := store.EndAbortedRun(ctx, s.pool, l.RunID, l.Epoch, errText)
	s.conflicts.report(ctx, l.RunID, domain.EstadoError, ended)
	return ended.Finished, err
}

func (s pgStore) GetMetrics(ctx context.Context, closingID int64) (store.Metrics, error) {
	return store.GetMetrics(ctx, s.db(ctx), closingID)
}

func (s pgStore) ClosingTotals(ctx context.Context, closingID int64) (store.WriteSummary, error) {
	return store.ClosingTotals(ctx, s.pool, closingID)
}

func (s pgStore) Chunks(ctx context.Context, runID int64, limit int, statuses ...domain.ChunkStatus) ([]store.Chunk, error) {
	return store.Chunks(ctx, s.db(ctx), runID, limit, statuses...)
}

func (s pgStore) GetChunk(ctx context.Context, runID int64, index int) (store.Chunk, error) {
	return store.GetChunk(ctx, s.db(ctx), runID, index)
}

func (s pgStore) DispatchChunk(ctx context.Context, p store.DispatchChunkParams) (int, bool, error) {
	return store.DispatchChunk(ctx, s.db(ctx), p.RunID, p.Epoch, p.Index, p.Token, p.Worker)
}

func (s pgStore) EndAttempt(ctx context.Context, p store.EndAttemptParams) error {
	return store.EndAttempt(ctx, s.db(ctx), p.RunID, p.Index, p.Attempt, p.Outcome, p.Error)
}

func (s pgStore) FailChunk(ctx context.Context, p store.FailChunkParams) (bool, error) {
	return store.FailChunkWith(ctx, s.db(ctx), p.RunID, p.Epoch, p.Index, p.Token, p.Failure)
}

func (s pgStore) SplitChunk(ctx context.Context, p store.SplitChunkParams) ([]store.Chunk, bool, error) {
	return store.SplitChunk(ctx, s.pool, p.RunID, p.Epoch, p.Index, p.Token, p.Reason, p.WorkerDied)
}

func (s pgStore) FailedEmployees(ctx context.Context, runID int64, limit int, workerDied bool) ([]store.FailedEmployee, error) {
	return store.FailedEmployees(ctx, s.db(ctx), runID, limit, workerDied)
}

func (s pgStore) GetClosing(ctx context.Context, id int64) (store.Closing, error) {
	return store.GetClosing(ctx, s.db(ctx), id)
}

func (s pgStore) CheckRUTs(ctx context.Context, closingID int64, limit int) (store.RUTProblems, error) {
	return store.CheckRUTs(ctx, s.db(ctx), closingID, limit)
}

func (s pgStore) CountUnmatchedNovedades(ctx context.Context, closingID int64) (int, error) {
	return store.CountUnmatchedNovedades(ctx, s.db(ctx), closingID)
}

func (s pgStore) CountEmployees(ctx context.Context, closingID int64) (int, error) {
	return store.CountEmployees(ctx, s.db(ctx), closingID)
}

func (s pgStore) EachEmployee(ctx context.Context, closingID int64, costs bool, fn func(store.EmployeeCost)) error {
	return store.EachEmployee(ctx, s.db(ctx), closingID, costs, fn)
}

var _ records = pgStore{}

func (s pgStore) ListRuns(ctx context.Context, f store.RunFilter, after store.RunCursor, limit int) ([]store.Run, error) {
	return store.ListRuns(ctx, s.db(ctx), f, after, limit)
}

func (s pgStore) LibroEmployeeOf(ctx context.Context, closingID int64, canonRUT string) (int64, error) {
	return store.LibroEmployeeOf(ctx, s.db(ctx), closingID, canonRUT)
}

func (s pgStore) ReadChunk(ctx context.Context, c store.Closing, firstID, lastID int64) (store.ChunkSources, error) {
	return store.ReadChunk(ctx, s.db(ctx), c, firstID, lastID)
}

func (s pgStore) StoredRecordOf(ctx context.Context, closingID int64, canonRUT string) (store.StoredRecord, bool, error) {
	return store.StoredRecordOf(ctx, s.db(ctx), closingID, canonRUT)
}

func (s pgStore) AbsenceTypes(ctx context.Context, ids []int64) (map[int64]string, error) {
	return store.AbsenceTypes(ctx, s.db(ctx), ids)
}

func (s pgStore) ReadStoredRecords(ctx context.Context, closingID int64, afterRUT string, limit int) ([]store.StoredRecord, error) {
	return store.ReadStoredRecords(ctx, s.db(ctx), closingID, afterRUT, limit)
}

func (s pgStore) ChunkMap(ctx context.Context, runID int64) ([]store.ChunkCell, error) {
	return store.ChunkMap(ctx, s.pool, runID)
}

func (s pgStore) Throughput(ctx context.Context, since time.Time, bucket time.Duration) ([]store.ThroughputPoint, error) {
	return store.Throughput(ctx, s.pool, since, bucket)
}

func (s pgStore) WorkersActivity(ctx context.Context, since time.Time) ([]store.WorkerActivity, error) {
	return store.WorkersActivity(ctx, s.pool, since)
}
