package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/money"
)

var (
	// ErrClosingStateChanged means the closing's estado moved between the checks and
	// the start of the run.
	ErrClosingStateChanged = errors.New("closing estado changed while starting the run")
	// ErrStaleAttempt means a chunk's attempt token is no longer current: a newer
	// attempt was dispatched, or the run was cancelled or ended.
	ErrStaleAttempt = errors.New("chunk attempt is no longer current")
)

// ActiveRunError means the closing already has an unfinished run.
type ActiveRunError struct{ RunID int64 }

func (e *ActiveRunError) Error() string {
	return fmt.Sprintf("consolidation %d of this closing is already in progress", e.RunID)
}

// NewRun is everything StartRun stores before the first dispatch.
type NewRun struct {
	ClosingID          int64
	Mode               domain.Mode
	Policy             domain.Policy
	ChunkSize          int
	PreviousEstado     domain.Estado
	Deadline           time.Time
	RetryOf            int64 // 0: none
	UnmatchedNovedades int
	TotalEmployees     int
	Chunks             []ChunkRange
	RequestID          string // the caller's idempotency key; "": none
	RequestedBy        string // the caller's identity; "" without TLS
	Traceparent        string // the W3C traceparent of the starting call's span; "": none
}

// Run is a row of consolidation_run with its chunks added up.
type Run struct {
	ID                 int64
	ClosingID          int64
	Mode               domain.Mode
	Policy             domain.Policy
	ChunkSize          int
	PreviousEstado     domain.Estado
	Estado             domain.Estado
	TotalChunks        int
	TotalEmployees     int
	UnmatchedNovedades int
	StartedAt          time.Time
	Deadline           time.Time
	CancelRequested    bool
	FinishedAt         time.Time // zero while running
	Error              string
	TotalHaberes       money.Cents
	TotalDescuentos    money.Cents
	LiquidoPagar       money.Cents
	TotalsVerified     bool
	RequestedBy        string // who started it ("" without TLS)
	CancelledBy        string // who first cancelled it ("" when nobody did, or without TLS)

	ChunksSucceeded int
	ChunksFailed    int
	ChunksSplit     int // replaced by their halves (SplitChunk)
	// ChunksCancelled counts the chunks the run's end found pending or running (a
	// cancel, the time limit, a permanent database error): neither succeeded nor
	// failed; EmployeesCancelled their employees.
	ChunksCancelled    int
	EmployeesCancelled int
	// EmployeesDone and Records count the rows of the run that remain: those of
	// its succeeded chunks, none once its end removed them (RowsRemoved), when
	// EmployeesRemoved counts the employees whose rows were written and removed.
	EmployeesDone    int
	Records          int64
	RowsRemoved      bool
	EmployeesRemoved int
	// EmployeesFailed counts the employees of failed chunks, and
	// EmployeesWorkerDied those of them whose workers died on every attempt.
	EmployeesFailed     int
	EmployeesWorkerDied int

	RequestID string // "": none
	// ClosingEstadoFound is the closing's estado the run's end found in place of
	// consolidando_datos, written by the application mid-run, and left as it was
	// (docs/rules.md, "The application writing estado mid-run"); "": no conflict.
	ClosingEstadoFound domain.Estado
}

// Finished reports whether the run has ended.
func (r Run) Finished() bool { return !r.FinishedAt.IsZero() }

// StartRun moves the closing to consolidando_datos and stores the run and its chunk
// plan, all in one transaction: either the run exists with its whole plan and the
// closing is consolidating, or nothing changed. The estado update is guarded by the
// estado the caller checked, and a partial unique index allows one unfinished run
// per closing, so two callers can never start two runs of one closing.
func StartRun(ctx context.Context, pool *pgxpool.Pool, nr NewRun) (int64, error) {
	var runID int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = $3 WHERE id = $1 AND estado = $2",
			nr.ClosingID, nr.PreviousEstado, domain.EstadoConsolidando)
		if err != nil {
			return fmt.Errorf("moving closing %d to %s: %w", nr.ClosingID, domain.EstadoConsolidando, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrClosingStateChanged
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO consolidation_run (cierre_id, mode, policy, chunk_size, previous_estado, estado,
				total_chunks, total_employees, unmatched_novedades, retry_of_run_id, deadline, request_id, requested_by,
				traceparent)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, nullif($12, ''), nullif($13, ''), nullif($14, '')) RETURNING id`,
			nr.ClosingID, nr.Mode, nr.Policy, nr.ChunkSize, nr.PreviousEstado, domain.EstadoConsolidando,
			len(nr.Chunks), nr.TotalEmployees, nr.UnmatchedNovedades,
			pgtype.Int8{Int64: nr.RetryOf, Valid: nr.RetryOf != 0}, nr.Deadline, nr.RequestID, nr.RequestedBy,
			nr.Traceparent).Scan(&runID)
		if err != nil {
			return fmt.Errorf("storing the run of closing %d: %w", nr.ClosingID, err)
		}
		i := 0
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"consolidation_chunk"},
			[]string{"run_id", "chunk_index", "first_employee_id", "last_employee_id", "employees", "weight"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(nr.Chunks) {
					return nil, nil
				}
				c := nr.Chunks[i]
				i++
				return []any{runID, int32(c.Index), c.FirstID, c.LastID, int32(c.Employees), c.Weight}, nil
			}))
		if err != nil {
			return fmt.Errorf("storing the chunk plan of run %d: %w", runID, err)
		}
		return nil
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.Is(err, ErrClosingStateChanged) || errors.As(err, &pgErr) && pgErr.Code == "23505" {
			if active, ok, aerr := ActiveRun(ctx, pool, nr.ClosingID); aerr == nil && ok {
				return 0, &ActiveRunError{RunID: active}
			}
		}
		return 0, err
	}
	return runID, nil
}

// ActiveRun returns the unfinished run of a closing, if any.
func ActiveRun(ctx context.Context, q Querier, closingID int64) (int64, bool, error) {
	var id int64
	err := q.QueryRow(ctx, "SELECT id FROM consolidation_run WHERE cierre_id = $1 AND finished_at IS NULL", closingID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking for a running consolidation of closing %d: %w", closingID, err)
	}
	return id, true, nil
}

// RunByRequest returns the run of a closing started with a request id (the
// caller's idempotency key), if any, whatever its state.
func RunByRequest(ctx context.Context, q Querier, closingID int64, requestID string) (int64, bool, error) {
	var id int64
	err := q.QueryRow(ctx, "SELECT id FROM consolidation_run WHERE cierre_id = $1 AND request_id = $2",
		closingID, requestID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking for the consolidation of closing %d by request id: %w", closingID, err)
	}
	return id, true, nil
}

// UnfinishedRun is a run left in progress, with its size.
type UnfinishedRun struct {
	ID        int64
	Employees int // total_employees
}

// UnfinishedRuns lists the runs left in progress (by a coordinator that stopped),
// by id.
func UnfinishedRuns(ctx context.Context, q Querier) ([]UnfinishedRun, error) {
	rows, err := q.Query(ctx, "SELECT id, total_employees FROM consolidation_run WHERE finished_at IS NULL ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("listing unfinished runs: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[UnfinishedRun])
}

// LatestRunID returns the newest run of a closing.
func LatestRunID(ctx context.Context, q Querier, closingID int64) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, "SELECT id FROM consolidation_run WHERE cierre_id = $1 ORDER BY id DESC LIMIT 1", closingID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("finding the latest consolidation of closing %d: %w", closingID, interpretError(err))
	}
	return id, nil
}

// sqlRunSelect reads runs (r) with their chunks added up, one lateral aggregate
// per run read; GetRun and ListRuns add their WHERE. Employees and records
// consolidated count the rows that remain: none once the run's end removed them.
var sqlRunSelect = sqlf(`
SELECT r.id, r.cierre_id, r.mode, r.policy, r.chunk_size, r.previous_estado, r.estado, r.total_chunks,
       r.total_employees, r.unmatched_novedades, r.started_at, r.deadline, r.cancel_requested_at IS NOT NULL,
       r.finished_at, coalesce(r.error, ''), coalesce(r.sum_haberes_cents, 0), coalesce(r.sum_descuentos_cents, 0),
       coalesce(r.sum_liquido_cents, 0), r.totals_verified, coalesce(r.requested_by, ''), coalesce(r.cancelled_by, ''),
       c.succeeded, c.failed, c.split, c.cancelled, c.employees_cancelled,
       CASE WHEN r.rows_removed THEN 0 ELSE c.employees_done END,
       CASE WHEN r.rows_removed THEN 0 ELSE c.records END, r.rows_removed,
       CASE WHEN r.rows_removed THEN c.employees_done ELSE 0 END,
       c.employees_failed, c.employees_died, coalesce(r.request_id, ''), coalesce(r.closing_estado_found, '')
FROM consolidation_run r
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE c.status = {succeeded}) AS succeeded,
           count(*) FILTER (WHERE c.status = {failed}) AS failed,
           count(*) FILTER (WHERE c.status = {split}) AS split,
           count(*) FILTER (WHERE c.status = {cancelled}) AS cancelled,
           coalesce(sum(c.employees) FILTER (WHERE c.status = {cancelled}), 0) AS employees_cancelled,
           coalesce(sum(c.employees) FILTER (WHERE c.status = {succeeded}), 0) AS employees_done,
           coalesce(sum(c.employees) FILTER (WHERE c.status = {failed}), 0) AS employees_failed,
           coalesce(sum(c.employees) FILTER (WHERE c.status = {failed} AND c.worker_died), 0) AS employees_died,
           coalesce(sum(c.records) FILTER (WHERE c.status = {succeeded}), 0) AS records
    FROM consolidation_chunk c WHERE c.run_id = r.id) c`)

// GetRun reads a run with its chunks added up.
func GetRun(ctx context.Context, q Querier, runID int64) (Run, error) {
	r, err := scanRun(q.QueryRow(ctx, sqlRunSelect+" WHERE r.id = $1", runID))
	if err != nil {
		return Run{}, fmt.Errorf("reading consolidation %d: %w", runID, interpretError(err))
	}
	return r, nil
}

// scanRun scans a row of sqlRunSelect.
func scanRun(row pgx.Row) (Run, error) {
	var r Run
	var finished pgtype.Timestamptz
	err := row.Scan(&r.ID, &r.ClosingID, &r.Mode, &r.Policy, &r.ChunkSize,
		&r.PreviousEstado, &r.Estado, &r.TotalChunks, &r.TotalEmployees, &r.UnmatchedNovedades, &r.StartedAt,
		&r.Deadline, &r.CancelRequested, &finished, &r.Error, &r.TotalHaberes, &r.TotalDescuentos, &r.LiquidoPagar,
		&r.TotalsVerified, &r.RequestedBy, &r.CancelledBy, &r.ChunksSucceeded, &r.ChunksFailed, &r.ChunksSplit,
		&r.ChunksCancelled, &r.EmployeesCancelled, &r.EmployeesDone, &r.Records, &r.RowsRemoved,
		&r.EmployeesRemoved, &r.EmployeesFailed, &r.EmployeesWorkerDied, &r.RequestID,
		&r.ClosingEstadoFound)
	if err != nil {
		return Run{}, err
	}
	if finished.Valid {
		r.FinishedAt = finished.Time
	}
	return r, nil
}

var sqlRevokeTokens = sqlf(`UPDATE consolidation_chunk SET attempt_token = NULL
	WHERE run_id = $1 AND status IN ({pending}, {running})`)

// RequestCancel marks a run as cancelling and revokes every attempt token of its
// unfinished chunks. The update waits for any worker commit holding a chunk's row
// lock, and no commit can happen after it returns: fencing makes the cancel final.
// cancelling is true while the run is unfinished (whether or not an earlier call
// already asked; the first cancel's time and caller, by, are kept), false once it
// has ended.
func RequestCancel(ctx context.Context, pool *pgxpool.Pool, runID int64, by string) (cancelling bool, err error) {
	var changed bool
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE consolidation_run SET cancel_requested_at = coalesce(cancel_requested_at, now()),
			cancelled_by = CASE WHEN cancel_requested_at IS NULL THEN $2 ELSE cancelled_by END
			WHERE id = $1 AND finished_at IS NULL`, runID, pgtype.Text{String: by, Valid: by != ""})
		if err != nil {
			return err
		}
		changed = tag.RowsAffected() == 1
		_, err = tx.Exec(ctx, sqlRevokeTokens, runID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("cancelling consolidation %d: %w", runID, err)
	}
	return changed, nil
}
