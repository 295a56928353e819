package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rules"
)

// ChunkRange is a planned chunk: the libro employees with ids in [FirstID, LastID].
type ChunkRange struct {
	Index     int
	FirstID   int64
	LastID    int64
	Employees int
	Weight    float64
}

// Chunk is a row of the chunk ledger.
type Chunk struct {
	RunID           int64
	Index           int
	FirstID         int64
	LastID          int64
	Employees       int
	Status          domain.ChunkStatus
	Attempts        int
	Worker          string
	Error           string
	Records         int
	DurationSeconds float64
	CPUSeconds      float64
	PeakRSSBytes    int64
	TotalHaberes    money.Cents
	TotalDescuentos money.Cents
	LiquidoPagar    money.Cents
	// Split is set on a half of a split chunk (SplitChunk), ParentIndex naming
	// the chunk it is a half of.
	Split       bool
	ParentIndex int
	// WorkerDied: a failed chunk whose workers died on every attempt.
	WorkerDied bool
}

const sqlChunkColumns = `run_id, chunk_index, first_employee_id, last_employee_id, employees, status, attempts,
	coalesce(worker, ''), coalesce(error, ''), records, coalesce(duration_seconds, 0), coalesce(cpu_seconds, 0),
	coalesce(peak_rss_bytes, 0), coalesce(sum_haberes_cents, 0), coalesce(sum_descuentos_cents, 0),
	coalesce(sum_liquido_cents, 0), parent_index IS NOT NULL, coalesce(parent_index, 0), worker_died`

// chunkDests are the scan destinations of sqlChunkColumns.
func chunkDests(c *Chunk) []any {
	return []any{&c.RunID, &c.Index, &c.FirstID, &c.LastID, &c.Employees, &c.Status, &c.Attempts, &c.Worker,
		&c.Error, &c.Records, &c.DurationSeconds, &c.CPUSeconds, &c.PeakRSSBytes, &c.TotalHaberes,
		&c.TotalDescuentos, &c.LiquidoPagar, &c.Split, &c.ParentIndex, &c.WorkerDied}
}

func scanChunk(row pgx.CollectableRow) (Chunk, error) {
	var c Chunk
	err := row.Scan(chunkDests(&c)...)
	return c, err
}

// Chunks lists the chunks of a run with one of the given statuses (all when none
// is given), in index order, at most limit (0: no limit).
func Chunks(ctx context.Context, q Querier, runID int64, limit int, statuses ...domain.ChunkStatus) ([]Chunk, error) {
	sql := "SELECT " + sqlChunkColumns + " FROM consolidation_chunk WHERE run_id = $1"
	args := []any{runID}
	if len(statuses) > 0 {
		sql += " AND status = ANY($2)"
		args = append(args, statuses)
	}
	sql += " ORDER BY chunk_index"
	if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("reading chunks of consolidation %d: %w", runID, err)
	}
	out, err := pgx.CollectRows(rows, scanChunk)
	if err != nil {
		return nil, fmt.Errorf("reading chunks of consolidation %d: %w", runID, err)
	}
	return out, nil
}

// GetChunk reads one chunk of the ledger.
func GetChunk(ctx context.Context, q Querier, runID int64, index int) (Chunk, error) {
	rows, err := q.Query(ctx, "SELECT "+sqlChunkColumns+" FROM consolidation_chunk WHERE run_id = $1 AND chunk_index = $2", runID, index)
	if err != nil {
		return Chunk{}, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanChunk)
	if err != nil {
		return Chunk{}, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, interpretError(err))
	}
	return c, nil
}

// The run row is locked FOR SHARE first: a dispatch and RequestCancel (or a
// finish) serialize on it, so a dispatch racing a cancel either comes first (and
// the cancel revokes the new token) or sees the cancel and hands out nothing. The
// run's lease epoch is checked in the same statement (owned).
var sqlDispatchChunk = sqlf(`
WITH r AS (
	SELECT lease_epoch = $5 AS owned, finished_at IS NULL AND cancel_requested_at IS NULL AS open
	FROM consolidation_run WHERE id = $1 FOR SHARE),
c AS (
	UPDATE consolidation_chunk c SET status = {running}, attempts = attempts + 1, attempt_token = $3,
		worker = $4, dispatched_at = now()
	FROM r
	WHERE c.run_id = $1 AND c.chunk_index = $2 AND c.status IN ({pending}, {running}) AND r.owned AND r.open
	RETURNING c.attempts),
a AS (
	INSERT INTO consolidation_chunk_attempt (run_id, chunk_index, attempt, attempt_token, worker)
	SELECT $1, $2, attempts, $3, $4 FROM c
	RETURNING attempt)
SELECT r.owned, r.open, (SELECT attempt FROM a) FROM r`)

// DispatchChunk hands a chunk to a new attempt: it becomes running with a new
// token (so any earlier attempt can no longer commit) and the attempt is recorded.
// ok is false when the chunk has already ended (succeeded or failed), the run has
// ended or is being cancelled. epoch is the caller's lease epoch (AcquireLease);
// when the run's lease has moved on, nothing changes and the error is
// ErrLeaseLost.
func DispatchChunk(ctx context.Context, q Querier, runID, epoch int64, index int, token int64, worker string) (attempt int, ok bool, err error) {
	var owned, open bool
	var got pgtype.Int4
	err = q.QueryRow(ctx, sqlDispatchChunk, runID, index, token, worker, epoch).Scan(&owned, &open, &got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil // no such run
	case err != nil:
		return 0, false, fmt.Errorf("dispatching chunk %d of consolidation %d: %w", index, runID, err)
	case open && !owned:
		return 0, false, fmt.Errorf("dispatching chunk %d of consolidation %d: %w", index, runID, ErrLeaseLost)
	case !got.Valid:
		return 0, false, nil
	}
	return int(got.Int32), true, nil
}

var sqlFailChunk = sqlf(`
WITH r AS (
	SELECT lease_epoch = $5 AS owned FROM consolidation_run WHERE id = $1 FOR SHARE),
c AS (
	UPDATE consolidation_chunk c SET status = {failed}, error = $4, finished_at = now(), worker_died = $6
	FROM r
	WHERE c.run_id = $1 AND c.chunk_index = $2 AND c.attempt_token = $3 AND c.status = {running} AND r.owned
	RETURNING 1)
SELECT r.owned, EXISTS (SELECT FROM c) FROM r`)

// ChunkFailure is why a chunk failed for good.
type ChunkFailure struct {
	Error string
	// WorkerDied: workers died holding the chunk on every attempt (docs/lifecycle.md#how-a-run-ends:
	// error_recursos when it decides the run).
	WorkerDied bool
}

// FailChunkWith marks a chunk failed for good, provided token is still its
// current one and epoch the run's lease epoch (ErrLeaseLost otherwise, and
// nothing changes), recording why and whether workers died on it.
func FailChunkWith(ctx context.Context, q Querier, runID, epoch int64, index int, token int64, f ChunkFailure) (bool, error) {
	var owned, failed bool
	err := q.QueryRow(ctx, sqlFailChunk, runID, index, token, f.Error, epoch, f.WorkerDied).Scan(&owned, &failed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("failing chunk %d of consolidation %d: %w", index, runID, err)
	case !owned:
		return false, fmt.Errorf("failing chunk %d of consolidation %d: %w", index, runID, ErrLeaseLost)
	}
	return failed, nil
}

// Assignment is what a worker needs to process a chunk.
type Assignment struct {
	Closing      Closing
	Chunk        Chunk
	Token        int64 // 0 when revoked
	RunEmployees int   // the run's total_employees: a worker serves the smallest run first
}

// GetAssignment reads a chunk with its closing and its run's size.
func GetAssignment(ctx context.Context, q Querier, runID int64, index int) (Assignment, error) {
	var a Assignment
	var token pgtype.Int8
	rows, err := q.Query(ctx, `
		SELECT `+sqlChunkColumns+`, k.id, k.mes, k.anno, k.estado, attempt_token, k.total_employees
		FROM consolidation_chunk
		CROSS JOIN LATERAL (SELECT k.id, k.mes, k.anno, k.estado, r.total_employees FROM consolidation_run r
			JOIN nomina_cierrenomina k ON k.id = r.cierre_id WHERE r.id = run_id) k
		WHERE run_id = $1 AND chunk_index = $2`, runID, index)
	if err != nil {
		return a, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, err)
	}
	a, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Assignment, error) {
		var a Assignment
		dests := append(chunkDests(&a.Chunk), &a.Closing.ID, &a.Closing.Mes, &a.Closing.Anno, &a.Closing.Estado, &token, &a.RunEmployees)
		return a, row.Scan(dests...)
	})
	if err != nil {
		return a, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, interpretError(err))
	}
	a.Token = token.Int64
	return a, nil
}

// ChunkStats is what a worker measured of a chunk.
type ChunkStats struct {
	Worker          string
	DurationSeconds float64
	CPUSeconds      float64
	PeakRSSBytes    int64
}

var (
	sqlChunkSucceeded = sqlf(`
UPDATE consolidation_chunk SET status = {succeeded}, error = NULL, finished_at = now(), records = $3,
	duration_seconds = $4, cpu_seconds = $5, peak_rss_bytes = $6, sum_haberes_cents = $7,
	sum_descuentos_cents = $8, sum_liquido_cents = $9, worker = $10
WHERE run_id = $1 AND chunk_index = $2`)
	sqlAttemptCommitted = sqlf(`
UPDATE consolidation_chunk_attempt SET finished_at = now(), outcome = {committed}
WHERE run_id = $1 AND chunk_index = $2 AND attempt_token = $3`)
)

// sqlFreshPlans makes every statement of a chunk's commit plan afresh against the
// result tables as they are now. A session keeps the plans it made: its prepared
// statements' and, above all, the foreign-key checks' (one query a concept row,
// planned once per session and then kept as a generic plan). A plan made while
// the result tables were nearly empty scans them whole (right for a page or two);
// kept while a closing fills them, it scans the growing table once per concept
// row, which makes the closing quadratic in its employees (docs/benchmarks.md,
// "Plans made on empty tables"). Table statistics do not protect it: a table
// analyzed empty keeps those statistics until autovacuum next analyzes it, and
// the plan is kept until then. Discarding costs one re-plan of each statement a
// chunk, small beside the chunk's COPY. It is sent with the commit's BEGIN, in
// one round trip (freshPlansTx).
const sqlFreshPlans = "DISCARD PLANS"

// freshPlansTx begins a chunk's commit and discards the session's plans in one
// simple query, before the commit's first statement is planned.
var freshPlansTx = pgx.TxOptions{BeginQuery: "BEGIN; " + sqlFreshPlans}

// CommitChunk writes a chunk's consolidated rows, in place of the closing's
// previous rows of the same employees (saved for the end of the run; rows that
// would not change are kept and re-stamped, see replacePrevious), and marks the chunk succeeded in the ledger, in one transaction, provided token is still the chunk's current
// attempt token (fencing): the chunk's ledger row is locked first, so a concurrent
// re-dispatch or cancel either happens before (and this commit is refused with
// ErrStaleAttempt, whatever became of the chunk) or waits for it. When this same
// attempt had already committed, fromLedger is set (read the summary with
// GetChunk), and nothing is written again.
//
// inTx, when not nil, is called inside the transaction once the attempt has been
// found current, before anything is written (the fault tests stall there).
func CommitChunk(ctx context.Context, pool *pgxpool.Pool, runID int64, index int, token int64,
	closingID int64, recs []rules.Consolidated, stats ChunkStats, inTx func()) (sum WriteSummary, fromLedger bool, err error) {
	err = pgx.BeginTxFunc(ctx, pool, freshPlansTx, func(tx pgx.Tx) error {
		var status domain.ChunkStatus
		var current pgtype.Int8
		err := tx.QueryRow(ctx, `SELECT status, attempt_token FROM consolidation_chunk
			WHERE run_id = $1 AND chunk_index = $2 FOR UPDATE`, runID, index).Scan(&status, &current)
		if err != nil {
			return fmt.Errorf("locking chunk %d of consolidation %d: %w", index, runID, interpretError(err))
		}
		if !current.Valid || current.Int64 != token {
			return ErrStaleAttempt // superseded, cancelled or ended: even if done by another attempt
		}
		if status == domain.ChunkSucceeded {
			fromLedger = true // this very attempt committed already
			return nil
		}
		if status != domain.ChunkRunning {
			return ErrStaleAttempt
		}
		if inTx != nil {
			inTx()
		}
		write, kept, err := replacePrevious(ctx, tx, closingID, runID, index, recs)
		if err != nil {
			return err
		}
		if sum, err = WriteResults(ctx, tx, closingID, runID, time.Now(), write); err != nil {
			return err
		}
		sum = sum.plus(kept)
		return execBatch(ctx, tx,
			batchStmt{fmt.Sprintf("recording chunk %d of consolidation %d", index, runID), sqlChunkSucceeded, []any{
				runID, index, sum.Records, stats.DurationSeconds, stats.CPUSeconds, stats.PeakRSSBytes,
				int64(sum.TotalHaberes), int64(sum.TotalDescuentos), int64(sum.LiquidoPagar), stats.Worker}},
			batchStmt{fmt.Sprintf("recording the attempt of chunk %d of consolidation %d", index, runID), sqlAttemptCommitted,
				[]any{runID, index, token}})
	})
	if err != nil {
		return WriteSummary{}, false, err
	}
	return sum, fromLedger, nil
}
