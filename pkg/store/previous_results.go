package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/rules"
)

// A run keeps a closing's previous results readable until its own rows are
// complete (docs/rules.md, "Forced runs"): UNIQUE (cierre_id, rut) allows one row
// per employee, so each chunk's commit replaces the previous rows of its own
// employees (savePrevious), and the end of the run settles what was saved
// (settlePrevious): dropped when the run keeps its rows, put back exactly when it
// removes them. The saved rows are one row of consolidation_previous_chunk a chunk
// commit, written in that commit's transaction, so they stand or fall with the
// rows that replaced them.

// sqlFindPrevious finds the closing's rows of the given RUTs written by another
// run (or by none): one lookup of the (cierre_id, rut) unique index a RUT. The
// LIMIT keeps the lateral subquery a parameterized scan, so the plan is a nested
// loop of index probes whatever the table's statistics say: a result table whose
// statistics are stale (a first closing filling an empty table, faster than
// autovacuum analyzes it) would otherwise be read through the cierre_id prefix
// alone, all of the closing's rows a chunk, which makes a closing quadratic in its
// employees.
const sqlFindPrevious = `
SELECT e.id FROM unnest($2::text[]) AS r(rut)
CROSS JOIN LATERAL (
	SELECT e.id, e.consolidation_run_id FROM nomina_empleado_consolidado e
	WHERE e.cierre_id = $1 AND e.rut = r.rut LIMIT 1) e
WHERE e.consolidation_run_id IS DISTINCT FROM $3`

// sqlSavePrevious moves the employee rows of the given ids into one row of
// consolidation_previous_chunk, the chunk's: the employee rows and their concept
// rows, whole, as two json arrays (row_to_json keeps every column by name, the
// application's too; made as each row is deleted, it spares the CTE a copy of the
// row), and deletes them, concepts first (no cascade is assumed,
// docs/database.md). One json row a chunk costs a fraction of one jsonb row an
// employee: to_jsonb and jsonb_agg built a binary tree of every row, and the
// employee rows' index and toast entries came with it (docs/benchmarks.md,
// "Re-runs").
const sqlSavePrevious = `
WITH old_concepts AS (
	DELETE FROM nomina_concepto_empleado_consolidado c
	WHERE c.empleado_consolidado_id = ANY($3::bigint[])
	RETURNING row_to_json(c) AS r),
old_employees AS (
	DELETE FROM nomina_empleado_consolidado e WHERE e.id = ANY($3::bigint[])
	RETURNING row_to_json(e) AS r),
saved AS (
	INSERT INTO consolidation_previous_chunk (run_id, chunk_index, employees, concepts)
	SELECT $1, $2, (SELECT coalesce(json_agg(o.r), '[]') FROM old_employees o),
		(SELECT coalesce(json_agg(o.r), '[]') FROM old_concepts o)
	RETURNING json_array_length(employees))
SELECT (SELECT * FROM saved), (SELECT count(*) FROM old_employees)`

// savePrevious saves and deletes the closing's previous rows of the employees of
// recs, in the commit transaction of chunk index, before recs are written; it
// returns how many employee rows it replaced. A chunk with nothing to replace (every chunk of
// a closing's first run) costs one statement of index probes.
func savePrevious(ctx context.Context, tx pgx.Tx, closingID, runID int64, index int, recs []rules.Consolidated) (int64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	// Each RUT once: a RUT twice in recs (rows added to the libro during the run)
	// would find its row twice; writing the chunk refuses it later (23505).
	ruts := make([]string, 0, len(recs))
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		if !seen[recs[i].RUT] {
			seen[recs[i].RUT] = true
			ruts = append(ruts, recs[i].RUT)
		}
	}
	rows, err := tx.Query(ctx, sqlFindPrevious, closingID, ruts, runID)
	if err != nil {
		return 0, fmt.Errorf("finding the previous rows of %d employees: %w", len(recs), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("finding the previous rows of %d employees: %w", len(recs), err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var saved, deleted int64
	if err := tx.QueryRow(ctx, sqlSavePrevious, runID, index, ids).Scan(&saved, &deleted); err != nil {
		return 0, fmt.Errorf("saving the previous rows of %d employees: %w", len(ids), err)
	}
	if saved != int64(len(ids)) || deleted != saved {
		return 0, fmt.Errorf("saving the previous rows of %d employees: %d saved, %d deleted", len(ids), saved, deleted)
	}
	return saved, nil
}

// The saved rows are put back whole, ids included: json_populate_recordset makes
// rows of the table's own type from what row_to_json saved, so every column (the
// application's too) gets its saved value. Employees first, so the concept rows
// find them. consolidation_previous_result holds what a version before
// consolidation_previous_chunk saved (one jsonb row an employee): a run started by
// it and ended by this one finds its first chunks' rows there, so it is restored
// and emptied too (two probes of an empty primary key otherwise).
const (
	sqlRestoreEmployees = `
INSERT INTO nomina_empleado_consolidado OVERRIDING SYSTEM VALUE
SELECT r.* FROM consolidation_previous_chunk s,
	json_populate_recordset(NULL::nomina_empleado_consolidado, s.employees) r
WHERE s.run_id = $1
UNION ALL
SELECT r.* FROM consolidation_previous_result s,
	jsonb_populate_record(NULL::nomina_empleado_consolidado, s.employee) r
WHERE s.run_id = $1`
	sqlRestoreConcepts = `
INSERT INTO nomina_concepto_empleado_consolidado OVERRIDING SYSTEM VALUE
SELECT r.* FROM consolidation_previous_chunk s,
	json_populate_recordset(NULL::nomina_concepto_empleado_consolidado, s.concepts) r
WHERE s.run_id = $1
UNION ALL
SELECT r.* FROM consolidation_previous_result s,
	jsonb_populate_recordset(NULL::nomina_concepto_empleado_consolidado, s.concepts) r
WHERE s.run_id = $1`
	sqlDropSaved = `
WITH chunks AS (DELETE FROM consolidation_previous_chunk WHERE run_id = $1)
DELETE FROM consolidation_previous_result WHERE run_id = $1`
)

// settlePrevious settles a run's saved rows at its end, in the transaction that
// ends it. A run that removes its rows (RemoveRows, already removed) gets the
// closing's previous rows back exactly as they were. A full run that keeps its
// rows deletes the closing's rows it did not write: employees no longer in the
// libro, and the previous rows of employees whose chunk failed (a full run
// replaces the closing's results; retry_failed adds to its run's). Either way the
// saved rows are dropped. It returns the statements, for the end's batch.
func settlePrevious(closingID, runID int64, mode domain.Mode, removeRows bool) []batchStmt {
	var stmts []batchStmt
	switch {
	case removeRows:
		stmts = append(stmts, batchStmt{"restoring the previous employee rows", sqlRestoreEmployees, []any{runID}},
			batchStmt{"restoring the previous concept rows", sqlRestoreConcepts, []any{runID}})
	case mode == domain.ModeFull:
		stmts = append(stmts, removeResults("removing the rows the run did not write",
			"e.cierre_id = $1 AND e.consolidation_run_id IS DISTINCT FROM $2", closingID, runID)...)
	}
	return append(stmts, batchStmt{"dropping the saved previous rows", sqlDropSaved, []any{runID}})
}
