package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/domain"
)

// ErrNotSplittable means a chunk holds fewer than two libro employees: it cannot
// be split, only failed. Nothing changed.
var ErrNotSplittable = errors.New("the chunk holds fewer than two employees")

var (
	// sqlSplitHalves finds where a chunk's range splits: the k-th and (k+1)-th
	// libro ids of the range in id order, k = ⌊n/2⌋, with n.
	sqlSplitHalves = `
SELECT id, n, total FROM (
	SELECT id, row_number() OVER (ORDER BY id) AS n, count(*) OVER () AS total
	FROM nomina_empleado_cierre WHERE cierre_id = $1 AND id BETWEEN $2 AND $3) e
WHERE n IN (total / 2, total / 2 + 1) ORDER BY n`
	sqlMarkSplit = sqlf(`
UPDATE consolidation_chunk SET status = {split}, attempt_token = NULL, error = $3, worker_died = $4,
	finished_at = now()
WHERE run_id = $1 AND chunk_index = $2`)
)

// SplitChunk replaces a running chunk by its two halves (docs/lifecycle.md#how-a-run-ends: a chunk
// that fails for what may be one employee's fault is split down to the employee
// that fails it), in one transaction: the chunk becomes split with reason as its
// error (workerDied saying whether workers died on it), and two pending chunks are
// appended at the run's next indexes, each naming it as parent, the first with the
// ⌊n/2⌋ lowest libro ids of its range and the second with the rest (their exact
// counts), and the run's total_chunks grows by two. It is fenced like FailChunk:
// only while token is the chunk's current attempt token (ok is false otherwise,
// and nothing changes) and epoch the run's lease epoch (ErrLeaseLost). A chunk
// with fewer than two employees is refused with ErrNotSplittable.
func SplitChunk(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, index int, token int64,
	reason string, workerDied bool) (halves []Chunk, ok bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The run row first, as a dispatch and a finish lock it: the same order.
		var closingID int64
		var owned bool
		var next int
		err := tx.QueryRow(ctx, `SELECT cierre_id, lease_epoch = $2, total_chunks FROM consolidation_run
			WHERE id = $1 FOR NO KEY UPDATE`, runID, epoch).Scan(&closingID, &owned, &next)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		case !owned:
			return ErrLeaseLost
		}
		var parent Chunk
		var current pgtype.Int8
		err = tx.QueryRow(ctx, "SELECT "+sqlChunkColumns+`, attempt_token FROM consolidation_chunk
			WHERE run_id = $1 AND chunk_index = $2 FOR UPDATE`, runID, index).
			Scan(append(chunkDests(&parent), &current)...)
		if err != nil {
			return interpretError(err)
		}
		if parent.Status != domain.ChunkRunning || !current.Valid || current.Int64 != token {
			return nil // superseded, ended or revoked
		}
		rows, err := tx.Query(ctx, sqlSplitHalves, closingID, parent.FirstID, parent.LastID)
		if err != nil {
			return err
		}
		type cut struct {
			ID       int64
			N, Total int
		}
		cuts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cut])
		if err != nil {
			return err
		}
		if len(cuts) != 2 {
			return ErrNotSplittable
		}
		k, n := cuts[0].N, cuts[0].Total
		halves = []Chunk{
			{RunID: runID, Index: next, FirstID: parent.FirstID, LastID: cuts[0].ID, Employees: k,
				Status: domain.ChunkPending, Split: true, ParentIndex: index},
			{RunID: runID, Index: next + 1, FirstID: cuts[1].ID, LastID: parent.LastID, Employees: n - k,
				Status: domain.ChunkPending, Split: true, ParentIndex: index},
		}
		if _, err := tx.Exec(ctx, sqlMarkSplit, runID, index, reason, workerDied); err != nil {
			return err
		}
		for _, h := range halves {
			if _, err := tx.Exec(ctx, `INSERT INTO consolidation_chunk (run_id, chunk_index, first_employee_id,
				last_employee_id, employees, parent_index) VALUES ($1, $2, $3, $4, $5, $6)`,
				runID, h.Index, h.FirstID, h.LastID, h.Employees, index); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE consolidation_run SET total_chunks = total_chunks + 2 WHERE id = $1", runID); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("splitting chunk %d of consolidation %d: %w", index, runID, err)
	}
	if !ok {
		halves = nil
	}
	return halves, ok, nil
}

// FailedEmployee is a libro employee of a failed chunk. RUT is personal data,
// for the caller's report only (the reference ExplainEmployee takes): never
// logged, never in an error.
type FailedEmployee struct {
	EmployeeID int64 // nomina_empleado_cierre.id
	ChunkIndex int
	Error      string
	WorkerDied bool
	RUT        string // the libro row's, as written there
}

var sqlFailedEmployees = sqlf(`
SELECT e.id, c.chunk_index, coalesce(c.error, ''), c.worker_died, e.rut
FROM consolidation_chunk c
JOIN consolidation_run r ON r.id = c.run_id
JOIN nomina_empleado_cierre e ON e.cierre_id = r.cierre_id
	AND e.id BETWEEN c.first_employee_id AND c.last_employee_id
WHERE c.run_id = $1 AND c.status = {failed} AND (c.worker_died OR NOT $3)
ORDER BY e.id
LIMIT $2`)

// FailedEmployees lists the libro employees of a run's failed chunks (only those
// whose workers died, with workerDied), in id order, at most limit (the run's
// EmployeesFailed and EmployeesWorkerDied count them all).
func FailedEmployees(ctx context.Context, q Querier, runID int64, limit int, workerDied bool) ([]FailedEmployee, error) {
	rows, err := q.Query(ctx, sqlFailedEmployees, runID, limit, workerDied)
	if err != nil {
		return nil, fmt.Errorf("listing failed employees of consolidation %d: %w", runID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailedEmployee])
	if err != nil {
		return nil, fmt.Errorf("listing failed employees of consolidation %d: %w", runID, err)
	}
	return out, nil
}
