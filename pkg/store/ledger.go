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

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rules"
)

// Run modes.
const (
	ModeFull        = "full"
	ModeRetryFailed = "retry_failed"
)

// Chunk statuses in the ledger.
const (
	ChunkPending   = "pending"
	ChunkRunning   = "running"
	ChunkSucceeded = "succeeded"
	ChunkFailed    = "failed"
)

// AlgorithmVersion is written to nomina_metrica_consolidacion.version_algoritmo.
const AlgorithmVersion = "go-1"

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

// ChunkRange is a planned chunk: the libro employees with ids in [FirstID, LastID].
type ChunkRange struct {
	Index     int
	FirstID   int64
	LastID    int64
	Employees int
	Weight    float64
}

// NewRun is everything StartRun stores before the first dispatch.
type NewRun struct {
	ClosingID          int64
	Mode               string
	Policy             string
	ChunkSize          int
	PreviousEstado     string
	Deadline           time.Time
	RetryOf            int64 // 0: none
	UnmatchedNovedades int
	TotalEmployees     int
	Chunks             []ChunkRange
}

// Run is a row of consolidation_run with its chunks added up.
type Run struct {
	ID                 int64
	ClosingID          int64
	Mode               string
	Policy             string
	ChunkSize          int
	PreviousEstado     string
	Estado             string
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

	ChunksSucceeded int
	ChunksFailed    int
	EmployeesDone   int
	Records         int64
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
			nr.ClosingID, nr.PreviousEstado, EstadoConsolidando)
		if err != nil {
			return fmt.Errorf("moving closing %d to %s: %w", nr.ClosingID, EstadoConsolidando, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrClosingStateChanged
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO consolidation_run (cierre_id, mode, policy, chunk_size, previous_estado, estado,
				total_chunks, total_employees, unmatched_novedades, retry_of_run_id, deadline)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			nr.ClosingID, nr.Mode, nr.Policy, nr.ChunkSize, nr.PreviousEstado, EstadoConsolidando,
			len(nr.Chunks), nr.TotalEmployees, nr.UnmatchedNovedades,
			pgtype.Int8{Int64: nr.RetryOf, Valid: nr.RetryOf != 0}, nr.Deadline).Scan(&runID)
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

// UnfinishedRuns lists the runs left in progress (by a coordinator that stopped).
func UnfinishedRuns(ctx context.Context, q Querier) ([]int64, error) {
	rows, err := q.Query(ctx, "SELECT id FROM consolidation_run WHERE finished_at IS NULL ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("listing unfinished runs: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
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

const sqlRun = `
SELECT r.id, r.cierre_id, r.mode, r.policy, r.chunk_size, r.previous_estado, r.estado, r.total_chunks,
       r.total_employees, r.unmatched_novedades, r.started_at, r.deadline, r.cancel_requested_at IS NOT NULL,
       r.finished_at, coalesce(r.error, ''), coalesce(r.sum_haberes_cents, 0), coalesce(r.sum_descuentos_cents, 0),
       coalesce(r.sum_liquido_cents, 0), r.totals_verified,
       count(*) FILTER (WHERE c.status = 'succeeded'),
       count(*) FILTER (WHERE c.status = 'failed'),
       coalesce(sum(c.employees) FILTER (WHERE c.status = 'succeeded'), 0),
       coalesce(sum(c.records) FILTER (WHERE c.status = 'succeeded'), 0)
FROM consolidation_run r
LEFT JOIN consolidation_chunk c ON c.run_id = r.id
WHERE r.id = $1
GROUP BY r.id`

// GetRun reads a run with its chunks added up.
func GetRun(ctx context.Context, q Querier, runID int64) (Run, error) {
	var r Run
	var finished pgtype.Timestamptz
	err := q.QueryRow(ctx, sqlRun, runID).Scan(&r.ID, &r.ClosingID, &r.Mode, &r.Policy, &r.ChunkSize,
		&r.PreviousEstado, &r.Estado, &r.TotalChunks, &r.TotalEmployees, &r.UnmatchedNovedades, &r.StartedAt,
		&r.Deadline, &r.CancelRequested, &finished, &r.Error, &r.TotalHaberes, &r.TotalDescuentos, &r.LiquidoPagar,
		&r.TotalsVerified, &r.ChunksSucceeded, &r.ChunksFailed, &r.EmployeesDone, &r.Records)
	if err != nil {
		return Run{}, fmt.Errorf("reading consolidation %d: %w", runID, interpretError(err))
	}
	if finished.Valid {
		r.FinishedAt = finished.Time
	}
	return r, nil
}

// Chunk is a row of the chunk ledger.
type Chunk struct {
	RunID           int64
	Index           int
	FirstID         int64
	LastID          int64
	Employees       int
	Status          string
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
}

const sqlChunkColumns = `run_id, chunk_index, first_employee_id, last_employee_id, employees, status, attempts,
	coalesce(worker, ''), coalesce(error, ''), records, coalesce(duration_seconds, 0), coalesce(cpu_seconds, 0),
	coalesce(peak_rss_bytes, 0), coalesce(sum_haberes_cents, 0), coalesce(sum_descuentos_cents, 0),
	coalesce(sum_liquido_cents, 0)`

// chunkDests are the scan destinations of sqlChunkColumns.
func chunkDests(c *Chunk) []any {
	return []any{&c.RunID, &c.Index, &c.FirstID, &c.LastID, &c.Employees, &c.Status, &c.Attempts, &c.Worker,
		&c.Error, &c.Records, &c.DurationSeconds, &c.CPUSeconds, &c.PeakRSSBytes, &c.TotalHaberes,
		&c.TotalDescuentos, &c.LiquidoPagar}
}

func scanChunk(row pgx.CollectableRow) (Chunk, error) {
	var c Chunk
	err := row.Scan(chunkDests(&c)...)
	return c, err
}

// Chunks lists the chunks of a run with one of the given statuses (all when none
// is given), in index order, at most limit (0: no limit).
func Chunks(ctx context.Context, q Querier, runID int64, limit int, statuses ...string) ([]Chunk, error) {
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

// DispatchChunk hands a chunk to a new attempt: it becomes running with a new
// token (so any earlier attempt can no longer commit) and the attempt is recorded.
// ok is false when the chunk has already ended (succeeded or failed) or the run is
// being cancelled.
func DispatchChunk(ctx context.Context, q Querier, runID int64, index int, token int64, worker string) (attempt int, ok bool, err error) {
	err = q.QueryRow(ctx, `
		WITH c AS (
			UPDATE consolidation_chunk c SET status = 'running', attempts = attempts + 1, attempt_token = $3,
				worker = $4, dispatched_at = now()
			FROM consolidation_run r
			WHERE c.run_id = $1 AND c.chunk_index = $2 AND c.status IN ('pending', 'running')
			  AND r.id = c.run_id AND r.finished_at IS NULL AND r.cancel_requested_at IS NULL
			RETURNING c.attempts)
		INSERT INTO consolidation_chunk_attempt (run_id, chunk_index, attempt, attempt_token, worker)
		SELECT $1, $2, attempts, $3, $4 FROM c
		RETURNING attempt`, runID, index, token, worker).Scan(&attempt)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("dispatching chunk %d of consolidation %d: %w", index, runID, err)
	}
	return attempt, true, nil
}

// EndAttempt records how an attempt ended (committed, stale, error, ...).
func EndAttempt(ctx context.Context, q Querier, runID int64, index, attempt int, outcome, errText string) error {
	_, err := q.Exec(ctx, `
		UPDATE consolidation_chunk_attempt SET finished_at = now(), outcome = $4, error = nullif($5, '')
		WHERE run_id = $1 AND chunk_index = $2 AND attempt = $3 AND finished_at IS NULL`,
		runID, index, attempt, outcome, errText)
	if err != nil {
		return fmt.Errorf("recording attempt %d of chunk %d of consolidation %d: %w", attempt, index, runID, err)
	}
	return nil
}

// FailChunk marks a chunk failed for good, provided token is still its current one.
func FailChunk(ctx context.Context, q Querier, runID int64, index int, token int64, errText string) (bool, error) {
	tag, err := q.Exec(ctx, `
		UPDATE consolidation_chunk SET status = 'failed', error = $4, finished_at = now()
		WHERE run_id = $1 AND chunk_index = $2 AND attempt_token = $3 AND status = 'running'`,
		runID, index, token, errText)
	if err != nil {
		return false, fmt.Errorf("failing chunk %d of consolidation %d: %w", index, runID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RequestCancel marks a run as cancelling and revokes every attempt token of its
// unfinished chunks. The update waits for any worker commit holding a chunk's row
// lock, and no commit can happen after it returns: fencing makes the cancel final.
func RequestCancel(ctx context.Context, pool *pgxpool.Pool, runID int64) (bool, error) {
	var changed bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE consolidation_run SET cancel_requested_at = coalesce(cancel_requested_at, now())
			WHERE id = $1 AND finished_at IS NULL`, runID)
		if err != nil {
			return err
		}
		changed = tag.RowsAffected() == 1
		_, err = tx.Exec(ctx, `UPDATE consolidation_chunk SET attempt_token = NULL
			WHERE run_id = $1 AND status IN ('pending', 'running')`, runID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("cancelling consolidation %d: %w", runID, err)
	}
	return changed, nil
}

// ClearPreviousResults removes a closing's consolidated rows written by any run
// but this one (seed: limpiar_datos_consolidacion_previos). Idempotent.
func ClearPreviousResults(ctx context.Context, q Querier, closingID, runID int64) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM nomina_empleado_consolidado
		WHERE cierre_id = $1 AND consolidation_run_id IS DISTINCT FROM $2`, closingID, runID)
	if err != nil {
		return 0, fmt.Errorf("clearing previous results of closing %d: %w", closingID, err)
	}
	return tag.RowsAffected(), nil
}

// Assignment is what a worker needs to process a chunk.
type Assignment struct {
	Closing Closing
	Chunk   Chunk
	Token   int64 // 0 when revoked
}

// GetAssignment reads a chunk with its closing.
func GetAssignment(ctx context.Context, q Querier, runID int64, index int) (Assignment, error) {
	var a Assignment
	var token pgtype.Int8
	rows, err := q.Query(ctx, `
		SELECT `+sqlChunkColumns+`, k.id, k.mes, k.anno, k.estado, attempt_token
		FROM consolidation_chunk
		CROSS JOIN LATERAL (SELECT k.id, k.mes, k.anno, k.estado FROM consolidation_run r
			JOIN nomina_cierrenomina k ON k.id = r.cierre_id WHERE r.id = run_id) k
		WHERE run_id = $1 AND chunk_index = $2`, runID, index)
	if err != nil {
		return a, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, err)
	}
	a, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Assignment, error) {
		var a Assignment
		dests := append(chunkDests(&a.Chunk), &a.Closing.ID, &a.Closing.Mes, &a.Closing.Anno, &a.Closing.Estado, &token)
		return a, row.Scan(dests...)
	})
	if err != nil {
		return a, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, interpretError(err))
	}
	a.Token = token.Int64
	return a, nil
}

// RecordRefusedCommit notes on an attempt that it tried to commit after it had
// been superseded, and was refused.
func RecordRefusedCommit(ctx context.Context, q Querier, runID int64, index int, token int64) error {
	_, err := q.Exec(ctx, `UPDATE consolidation_chunk_attempt SET commit_refused_at = now()
		WHERE run_id = $1 AND chunk_index = $2 AND attempt_token = $3`, runID, index, token)
	if err != nil {
		return fmt.Errorf("recording a refused commit of chunk %d of consolidation %d: %w", index, runID, err)
	}
	return nil
}

// ChunkStats is what a worker measured of a chunk.
type ChunkStats struct {
	Worker          string
	DurationSeconds float64
	CPUSeconds      float64
	PeakRSSBytes    int64
}

// CommitChunk writes a chunk's consolidated rows and marks the chunk succeeded in
// the ledger, in one transaction, provided token is still the chunk's current
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
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var status string
		var current pgtype.Int8
		err := tx.QueryRow(ctx, `SELECT status, attempt_token FROM consolidation_chunk
			WHERE run_id = $1 AND chunk_index = $2 FOR UPDATE`, runID, index).Scan(&status, &current)
		if err != nil {
			return fmt.Errorf("locking chunk %d of consolidation %d: %w", index, runID, interpretError(err))
		}
		if !current.Valid || current.Int64 != token {
			return ErrStaleAttempt // superseded, cancelled or ended: even if done by another attempt
		}
		if status == ChunkSucceeded {
			fromLedger = true // this very attempt committed already
			return nil
		}
		if status != ChunkRunning {
			return ErrStaleAttempt
		}
		if inTx != nil {
			inTx()
		}
		if sum, err = WriteResults(ctx, tx, closingID, runID, time.Now(), recs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			UPDATE consolidation_chunk SET status = 'succeeded', error = NULL, finished_at = now(), records = $3,
				duration_seconds = $4, cpu_seconds = $5, peak_rss_bytes = $6, sum_haberes_cents = $7,
				sum_descuentos_cents = $8, sum_liquido_cents = $9, worker = $10
			WHERE run_id = $1 AND chunk_index = $2`,
			runID, index, sum.Records, stats.DurationSeconds, stats.CPUSeconds, stats.PeakRSSBytes,
			int64(sum.TotalHaberes), int64(sum.TotalDescuentos), int64(sum.LiquidoPagar), stats.Worker)
		if err != nil {
			return fmt.Errorf("recording chunk %d of consolidation %d: %w", index, runID, err)
		}
		_, err = tx.Exec(ctx, `UPDATE consolidation_chunk_attempt SET finished_at = now(), outcome = 'committed'
			WHERE run_id = $1 AND chunk_index = $2 AND attempt_token = $3`, runID, index, token)
		return err
	})
	if err != nil {
		return WriteSummary{}, false, err
	}
	return sum, fromLedger, nil
}

// ControlTotals are a run's sums as the ledger has them and as the written rows
// have them.
type ControlTotals struct {
	Ledger  WriteSummary
	Written WriteSummary
}

// Agree reports whether the ledger and the written rows agree.
func (c ControlTotals) Agree() bool { return c.Ledger == c.Written }

// CheckControlTotals adds up a run's succeeded chunks in the ledger and the rows the
// run wrote, so a run is only marked consolidated when both agree to the cent.
func CheckControlTotals(ctx context.Context, q Querier, runID int64) (ControlTotals, error) {
	var t ControlTotals
	err := q.QueryRow(ctx, `
		SELECT coalesce(sum(employees), 0), coalesce(sum(records), 0), coalesce(sum(sum_haberes_cents), 0)::bigint,
		       coalesce(sum(sum_descuentos_cents), 0)::bigint, coalesce(sum(sum_liquido_cents), 0)::bigint
		FROM consolidation_chunk WHERE run_id = $1 AND status = 'succeeded'`, runID).
		Scan(&t.Ledger.Employees, &t.Ledger.Records, &t.Ledger.TotalHaberes, &t.Ledger.TotalDescuentos, &t.Ledger.LiquidoPagar)
	if err != nil {
		return t, fmt.Errorf("adding up the ledger of consolidation %d: %w", runID, err)
	}
	err = q.QueryRow(ctx, `
		SELECT count(*), count(*) + coalesce(sum(n.lines), 0),
		       coalesce(sum(e.total_haberes) * 100, 0)::bigint, coalesce(sum(e.total_descuentos) * 100, 0)::bigint,
		       coalesce(sum(e.liquido_pagar) * 100, 0)::bigint
		FROM consolidation_run r
		JOIN nomina_empleado_consolidado e ON e.cierre_id = r.cierre_id AND e.consolidation_run_id = r.id
		LEFT JOIN LATERAL (SELECT count(*) AS lines FROM nomina_concepto_empleado_consolidado c
		                   WHERE c.empleado_consolidado_id = e.id) n ON true
		WHERE r.id = $1`, runID).
		Scan(&t.Written.Employees, &t.Written.Records, &t.Written.TotalHaberes, &t.Written.TotalDescuentos, &t.Written.LiquidoPagar)
	if err != nil {
		return t, fmt.Errorf("adding up the rows of consolidation %d: %w", runID, err)
	}
	return t, nil
}

// Outcome is how a run ends.
type Outcome struct {
	Estado         string
	Error          string
	RemoveRows     bool // remove every row the run wrote
	Totals         WriteSummary
	TotalsVerified bool
}

// FinishRun ends a run: it removes the run's rows when asked, records the final
// estado on the run and the closing, and replaces the closing's metrics row, in one
// transaction guarded by the run still being unfinished, so finishing twice (a
// reconciler and a resumed coordinator, say) changes nothing the second time.
func FinishRun(ctx context.Context, pool *pgxpool.Pool, runID int64, o Outcome) (bool, error) {
	finished := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var closingID int64
		err := tx.QueryRow(ctx, "SELECT cierre_id FROM consolidation_run WHERE id = $1 AND finished_at IS NULL FOR UPDATE", runID).Scan(&closingID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // already finished
		}
		if err != nil {
			return err
		}
		// No attempt may commit from now on.
		if _, err := tx.Exec(ctx, `UPDATE consolidation_chunk SET attempt_token = NULL,
				status = CASE WHEN status IN ('pending', 'running') THEN 'failed' ELSE status END,
				error = CASE WHEN status IN ('pending', 'running') THEN coalesce(error, $2) ELSE error END
			WHERE run_id = $1 AND status <> 'succeeded'`, runID, "run ended: "+o.Estado); err != nil {
			return err
		}
		if o.RemoveRows {
			if _, err := tx.Exec(ctx, "DELETE FROM nomina_empleado_consolidado WHERE cierre_id = $1 AND consolidation_run_id = $2", closingID, runID); err != nil {
				return fmt.Errorf("removing the rows of consolidation %d: %w", runID, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE consolidation_run SET estado = $2, error = nullif($3, ''), finished_at = now(),
				sum_haberes_cents = $4, sum_descuentos_cents = $5, sum_liquido_cents = $6, totals_verified = $7
			WHERE id = $1`, runID, o.Estado, o.Error, int64(o.Totals.TotalHaberes), int64(o.Totals.TotalDescuentos),
			int64(o.Totals.LiquidoPagar), o.TotalsVerified); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1 AND estado = $3",
			closingID, o.Estado, EstadoConsolidando); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlUpsertMetrics, runID, o.RemoveRows); err != nil {
			return fmt.Errorf("writing the metrics of consolidation %d: %w", runID, err)
		}
		finished = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("finishing consolidation %d: %w", runID, err)
	}
	return finished, nil
}

// sqlUpsertMetrics writes the closing's metrics row from the run and its ledger.
// Employees and records count what the run left in the tables.
const sqlUpsertMetrics = `
INSERT INTO nomina_metrica_consolidacion (cierre_id, total_empleados, chunks_procesados, chunks_exitosos,
	registros_creados, tiempo_total, tiempo_promedio_chunk, throughput_empleados_sec, throughput_registros_sec,
	memoria_pico_mb, cpu_promedio_percent, chunk_size_utilizado, workers_utilizados, version_algoritmo,
	fecha_procesamiento, consolidation_run_id)
SELECT r.cierre_id, m.employees, r.total_chunks, m.succeeded, m.records, m.seconds, m.avg_chunk,
       m.employees / nullif(m.seconds, 0), m.records / nullif(m.seconds, 0), m.peak_mb, m.cpu,
       r.chunk_size, m.workers, '` + AlgorithmVersion + `', now(), r.id
FROM consolidation_run r,
LATERAL (
	SELECT CASE WHEN $2 THEN 0 ELSE coalesce(sum(c.employees) FILTER (WHERE c.status = 'succeeded'), 0) END AS employees,
	       CASE WHEN $2 THEN 0 ELSE coalesce(sum(c.records) FILTER (WHERE c.status = 'succeeded'), 0) END AS records,
	       count(*) FILTER (WHERE c.status = 'succeeded') AS succeeded,
	       extract(epoch FROM clock_timestamp() - r.started_at)::double precision AS seconds,
	       avg(c.duration_seconds) FILTER (WHERE c.status = 'succeeded') AS avg_chunk,
	       max(c.peak_rss_bytes) / 1048576.0 AS peak_mb,
	       100 * sum(c.cpu_seconds) / nullif(sum(c.duration_seconds), 0) AS cpu,
	       count(DISTINCT c.worker) FILTER (WHERE c.status = 'succeeded') AS workers
	FROM consolidation_chunk c WHERE c.run_id = r.id
) m
WHERE r.id = $1
ON CONFLICT (cierre_id) DO UPDATE SET
	total_empleados = EXCLUDED.total_empleados, chunks_procesados = EXCLUDED.chunks_procesados,
	chunks_exitosos = EXCLUDED.chunks_exitosos, registros_creados = EXCLUDED.registros_creados,
	tiempo_total = EXCLUDED.tiempo_total, tiempo_promedio_chunk = EXCLUDED.tiempo_promedio_chunk,
	throughput_empleados_sec = EXCLUDED.throughput_empleados_sec,
	throughput_registros_sec = EXCLUDED.throughput_registros_sec, memoria_pico_mb = EXCLUDED.memoria_pico_mb,
	cpu_promedio_percent = EXCLUDED.cpu_promedio_percent, chunk_size_utilizado = EXCLUDED.chunk_size_utilizado,
	workers_utilizados = EXCLUDED.workers_utilizados, version_algoritmo = EXCLUDED.version_algoritmo,
	fecha_procesamiento = EXCLUDED.fecha_procesamiento, consolidation_run_id = EXCLUDED.consolidation_run_id`

// Metrics is the closing's nomina_metrica_consolidacion row.
type Metrics struct {
	RunID                  int64
	TotalEmpleados         int
	ChunksProcesados       int
	ChunksExitosos         int
	RegistrosCreados       int64
	TiempoTotal            float64
	TiempoPromedioChunk    float64
	ThroughputEmpleadosSec float64
	ThroughputRegistrosSec float64
	MemoriaPicoMB          float64
	CPUPromedioPercent     float64
	ChunkSizeUtilizado     int
	WorkersUtilizados      int
	VersionAlgoritmo       string
}

// GetMetrics reads the metrics row of a closing.
func GetMetrics(ctx context.Context, q Querier, closingID int64) (Metrics, error) {
	var m Metrics
	var run pgtype.Int8
	err := q.QueryRow(ctx, `
		SELECT consolidation_run_id, total_empleados, chunks_procesados, chunks_exitosos, registros_creados, tiempo_total,
		       coalesce(tiempo_promedio_chunk, 0), coalesce(throughput_empleados_sec, 0),
		       coalesce(throughput_registros_sec, 0), coalesce(memoria_pico_mb, 0), coalesce(cpu_promedio_percent, 0),
		       chunk_size_utilizado, coalesce(workers_utilizados, 0), version_algoritmo
		FROM nomina_metrica_consolidacion WHERE cierre_id = $1`, closingID).
		Scan(&run, &m.TotalEmpleados, &m.ChunksProcesados, &m.ChunksExitosos, &m.RegistrosCreados, &m.TiempoTotal,
			&m.TiempoPromedioChunk, &m.ThroughputEmpleadosSec, &m.ThroughputRegistrosSec, &m.MemoriaPicoMB,
			&m.CPUPromedioPercent, &m.ChunkSizeUtilizado, &m.WorkersUtilizados, &m.VersionAlgoritmo)
	if err != nil {
		return m, fmt.Errorf("reading the metrics of closing %d: %w", closingID, interpretError(err))
	}
	m.RunID = run.Int64
	return m, nil
}
