package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// pgStore is the ledger and the closings over a PostgreSQL pool: each method
// delegates to the pkg/store function of the same name.
type pgStore struct{ pool *pgxpool.Pool }

var (
	_ ledger   = pgStore{}
	_ closings = pgStore{}
)

func (s pgStore) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s pgStore) AcquireLease(ctx context.Context, runID int64, owner string, ttl time.Duration) (int64, bool, error) {
	return store.AcquireLease(ctx, s.pool, runID, owner, ttl)
}

func (s pgStore) RenewLease(ctx context.Context, runID, epoch int64, ttl time.Duration) (store.LeaseState, error) {
	return store.RenewLease(ctx, s.pool, runID, epoch, ttl)
}

func (s pgStore) ReleaseLease(ctx context.Context, runID, epoch int64) (bool, error) {
	return store.ReleaseLease(ctx, s.pool, runID, epoch)
}

func (s pgStore) StartRun(ctx context.Context, nr store.NewRun) (int64, error) {
	return store.StartRun(ctx, s.pool, nr)
}

func (s pgStore) GetRun(ctx context.Context, runID int64) (store.Run, error) {
	return store.GetRun(ctx, s.pool, runID)
}

func (s pgStore) RunTraceparent(ctx context.Context, runID int64) (string, error) {
	return store.RunTraceparent(ctx, s.pool, runID)
}

func (s pgStore) ActiveRun(ctx context.Context, closingID int64) (int64, bool, error) {
	return store.ActiveRun(ctx, s.pool, closingID)
}

func (s pgStore) LatestRunID(ctx context.Context, closingID int64) (int64, error) {
	return store.LatestRunID(ctx, s.pool, closingID)
}

func (s pgStore) RunByRequest(ctx context.Context, closingID int64, requestID string) (int64, bool, error) {
	return store.RunByRequest(ctx, s.pool, closingID, requestID)
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

func (s pgStore) UnfinishedRuns(ctx context.Context) ([]int64, error) {
	return store.UnfinishedRuns(ctx, s.pool)
}

func (s pgStore) RequestCancel(ctx context.Context, runID int64, by string) (bool, error) {
	return store.RequestCancel(ctx, s.pool, runID, by)
}

func (s pgStore) CheckControlTotals(ctx context.Context, runID int64) (store.ControlTotals, error) {
	return store.CheckControlTotals(ctx, s.pool, runID)
}

func (s pgStore) FinishRun(ctx context.Context, runID, epoch int64, o store.RunEnd) (bool, error) {
	return store.FinishRun(ctx, s.pool, runID, epoch, o)
}

func (s pgStore) AbortRun(ctx context.Context, runID, epoch int64, errText string) (bool, error) {
	return store.AbortRun(ctx, s.pool, runID, epoch, errText)
}

func (s pgStore) GetMetrics(ctx context.Context, closingID int64) (store.Metrics, error) {
	return store.GetMetrics(ctx, s.pool, closingID)
}

func (s pgStore) ClosingTotals(ctx context.Context, closingID int64) (store.WriteSummary, error) {
	return store.ClosingTotals(ctx, s.pool, closingID)
}

func (s pgStore) Chunks(ctx context.Context, runID int64, limit int, statuses ...domain.ChunkStatus) ([]store.Chunk, error) {
	return store.Chunks(ctx, s.pool, runID, limit, statuses...)
}

func (s pgStore) GetChunk(ctx context.Context, runID int64, index int) (store.Chunk, error) {
	return store.GetChunk(ctx, s.pool, runID, index)
}

func (s pgStore) DispatchChunk(ctx context.Context, runID, epoch int64, index int, token int64, worker string) (int, bool, error) {
	return store.DispatchChunk(ctx, s.pool, runID, epoch, index, token, worker)
}

func (s pgStore) EndAttempt(ctx context.Context, runID int64, index, attempt int, outcome domain.Outcome, errText string) error {
	return store.EndAttempt(ctx, s.pool, runID, index, attempt, outcome, errText)
}

func (s pgStore) FailChunk(ctx context.Context, runID, epoch int64, index int, token int64, f store.ChunkFailure) (bool, error) {
	return store.FailChunkWith(ctx, s.pool, runID, epoch, index, token, f)
}

func (s pgStore) SplitChunk(ctx context.Context, runID, epoch int64, index int, token int64, reason string, workerDied bool) ([]store.Chunk, bool, error) {
	return store.SplitChunk(ctx, s.pool, runID, epoch, index, token, reason, workerDied)
}

func (s pgStore) FailedEmployees(ctx context.Context, runID int64, limit int, workerDied bool) ([]store.FailedEmployee, error) {
	return store.FailedEmployees(ctx, s.pool, runID, limit, workerDied)
}

func (s pgStore) GetClosing(ctx context.Context, id int64) (store.Closing, error) {
	return store.GetClosing(ctx, s.pool, id)
}

func (s pgStore) CheckRUTs(ctx context.Context, closingID int64, limit int) (store.RUTProblems, error) {
	return store.CheckRUTs(ctx, s.pool, closingID, limit)
}

func (s pgStore) CountUnmatchedNovedades(ctx context.Context, closingID int64) (int, error) {
	return store.CountUnmatchedNovedades(ctx, s.pool, closingID)
}

func (s pgStore) CountEmployees(ctx context.Context, closingID int64) (int, error) {
	return store.CountEmployees(ctx, s.pool, closingID)
}

func (s pgStore) EachEmployee(ctx context.Context, closingID int64, costs bool, fn func(store.EmployeeCost)) error {
	return store.EachEmployee(ctx, s.pool, closingID, costs, fn)
}

var _ records = pgStore{}

func (s pgStore) ListRuns(ctx context.Context, f store.RunFilter, after store.RunCursor, limit int) ([]store.Run, error) {
	return store.ListRuns(ctx, s.pool, f, after, limit)
}

func (s pgStore) LibroEmployeeOf(ctx context.Context, closingID int64, canonRUT string) (int64, error) {
	return store.LibroEmployeeOf(ctx, s.pool, closingID, canonRUT)
}

func (s pgStore) ReadChunk(ctx context.Context, c store.Closing, firstID, lastID int64) (store.ChunkSources, error) {
	return store.ReadChunk(ctx, s.pool, c, firstID, lastID)
}

func (s pgStore) StoredRecordOf(ctx context.Context, closingID int64, canonRUT string) (store.StoredRecord, bool, error) {
	return store.StoredRecordOf(ctx, s.pool, closingID, canonRUT)
}

func (s pgStore) ReadStoredRecords(ctx context.Context, closingID int64, afterRUT string, limit int) ([]store.StoredRecord, error) {
	return store.ReadStoredRecords(ctx, s.pool, closingID, afterRUT, limit)
}
