package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A run's ledger (its chunks and their attempts) and the previous results it
// saved are kept for a retention period after it ends, then pruned; the run row
// is kept for ever (docs/architecture.md, "Bounded growth"). The closing's latest
// run keeps its ledger whatever its age: a retry_failed run is planned from it.

// sqlPrunableRuns lists finished runs that ended before $1, are not their
// closing's latest and still have ledger or saved rows, oldest first. The
// later-run probe uses (cierre_id, id), the row probes the tables' primary keys.
const sqlPrunableRuns = `
SELECT r.id FROM consolidation_run r
WHERE r.finished_at < $1
  AND EXISTS (SELECT FROM consolidation_run n WHERE n.cierre_id = r.cierre_id AND n.id > r.id)
  AND (EXISTS (SELECT FROM consolidation_chunk c WHERE c.run_id = r.id)
       OR EXISTS (SELECT FROM consolidation_previous_chunk p WHERE p.run_id = r.id)
       OR EXISTS (SELECT FROM consolidation_previous_result p WHERE p.run_id = r.id))
ORDER BY r.id
LIMIT $2`

// pruneSteps delete at most $2 rows of run $1 each, children first, so no
// delete cascades further than its own batch. PostgreSQL's DELETE has no LIMIT:
// the batch is chosen by key in a subquery.
var pruneSteps = []struct {
	table string
	sql   string
}{
	{"consolidation_chunk_attempt", `DELETE FROM consolidation_chunk_attempt WHERE (run_id, chunk_index, attempt) IN (
		SELECT run_id, chunk_index, attempt FROM consolidation_chunk_attempt WHERE run_id = $1 LIMIT $2)`},
	{"consolidation_chunk", `DELETE FROM consolidation_chunk WHERE (run_id, chunk_index) IN (
		SELECT run_id, chunk_index FROM consolidation_chunk WHERE run_id = $1 LIMIT $2)`},
	{"consolidation_previous_chunk", `DELETE FROM consolidation_previous_chunk WHERE (run_id, chunk_index) IN (
		SELECT run_id, chunk_index FROM consolidation_previous_chunk WHERE run_id = $1 LIMIT $2)`},
	{"consolidation_previous_result", `DELETE FROM consolidation_previous_result WHERE (run_id, employee_id) IN (
		SELECT run_id, employee_id FROM consolidation_previous_result WHERE run_id = $1 LIMIT $2)`},
}

// pruneLockKey is the transaction-level advisory lock every prune batch takes
// (pg_try_advisory_xact_lock), so two coordinators do not prune at the same time:
// the one that finds it taken stops its pass.
const pruneLockKey = 0x636f6e736f6c70 // "consolp"

// ErrPruneBusy means another session held the prune lock: another replica is
// pruning, and this pass stopped; nothing is wrong.
var ErrPruneBusy = errors.New("another session is pruning the ledger")

// PruneParams bound one pass of PruneLedger.
type PruneParams struct {
	// FinishedBefore: only runs that ended before it are pruned.
	FinishedBefore time.Time
	// Batch is the most rows one DELETE (and so one transaction) removes.
	Batch int
	// MaxRuns is the most runs one pass prunes.
	MaxRuns int
}

// PruneResult is what a pass of PruneLedger removed.
type PruneResult struct {
	// Runs are the runs whose ledger and saved rows are all gone.
	Runs []int64
	// Rows counts the rows deleted, by table.
	Rows map[string]int64
}

// PruneLedger removes the chunks, attempts and saved previous results of runs
// that ended before p.FinishedBefore (not their closing's latest run: see
// above), in batches of p.Batch rows, each batch its own short transaction: a
// run being driven is never touched (it has not ended) and never waits on a
// pass, and an interrupted pass leaves only whole batches done. A batch that
// finds the prune lock taken stops the pass with ErrPruneBusy and what it had
// removed.
func PruneLedger(ctx context.Context, pool *pgxpool.Pool, p PruneParams) (PruneResult, error) {
	res := PruneResult{Rows: map[string]int64{}}
	rows, err := pool.Query(ctx, sqlPrunableRuns, p.FinishedBefore, p.MaxRuns)
	if err != nil {
		return res, fmt.Errorf("listing the runs to prune: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return res, fmt.Errorf("listing the runs to prune: %w", err)
	}
	for _, runID := range ids {
		for _, step := range pruneSteps {
			for {
				n, err := pruneBatch(ctx, pool, step.sql, runID, p.Batch)
				res.Rows[step.table] += n
				if err != nil {
					return res, fmt.Errorf("pruning %s of consolidation %d: %w", step.table, runID, err)
				}
				if n < int64(p.Batch) {
					break
				}
			}
		}
		res.Runs = append(res.Runs, runID)
	}
	return res, nil
}

// pruneBatch runs one delete step in a transaction of its own under the prune lock.
func pruneBatch(ctx context.Context, pool *pgxpool.Pool, sql string, runID int64, batch int) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", int64(pruneLockKey)).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return ErrPruneBusy
		}
		tag, err := tx.Exec(ctx, sql, runID, batch)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
