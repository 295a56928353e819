package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/rules"
)

// A run keeps a closing's previous results readable until its own rows are
// complete (docs/rules.md, "Previous results"): UNIQUE (cierre_id, rut) allows one row
// per employee, so each chunk's commit settles the previous rows of its own
// employees (replacePrevious) and the end of the run settles what was saved
// (settlePrevious): dropped when the run keeps its rows, put back exactly when it
// removes them. An employee whose previous row and concept rows are what the
// rules computed again keeps them: the commit only re-stamps the row's
// consolidation_run_id. The others' previous rows are saved and deleted, and the
// new rows written. What a chunk commit saved and re-stamped is one row of
// consolidation_previous_chunk, written in that commit's transaction, so it
// stands or falls with the rows that replaced them (docs/lifecycle.md, "Rows
// removed and kept").

// sqlFindPrevious finds the closing's rows of the given RUTs written by another
// run (or by none): one lookup of the (cierre_id, rut) unique index a RUT. The
// LIMIT keeps the lateral subquery a parameterized scan, so the plan is a nested
// loop of index probes whatever the table's statistics say: a result table whose
// statistics are stale (a first closing filling an empty table, faster than
// autovacuum analyzes it) would otherwise be read through the cierre_id prefix
// alone, all of the closing's rows a chunk, which makes a closing quadratic in its
// employees. It reads the columns the service writes, as ReadStoredRecords does,
// so a chunk commit can tell an unchanged employee from a changed one.
var sqlFindPrevious = `
SELECT e.* FROM unnest($2::text[]) AS r(rut)
CROSS JOIN LATERAL (
	SELECT ` + selectList(employeeColumns) + `, e.consolidation_run_id IS DISTINCT FROM $3 AS other
	FROM nomina_empleado_consolidado e
	WHERE e.cierre_id = $1 AND e.rut = r.rut LIMIT 1) e
WHERE e.other`

// sqlPreviousConcepts reads the concept rows of the given employee rows: a range
// of the (empleado_consolidado_id, codigo_concepto) unique index an employee. The
// OFFSET 0 keeps the lateral subquery a parameterized scan, for the reason given
// at sqlFindPrevious: planned on stale statistics, = ANY scans the table.
var sqlPreviousConcepts = "SELECT c.* FROM unnest($1::bigint[]) AS k(id)\nCROSS JOIN LATERAL (\n\tSELECT " +
	selectList(conceptColumns) + ` FROM nomina_concepto_empleado_consolidado
	WHERE empleado_consolidado_id = k.id OFFSET 0) c`

// sqlSavePrevious moves the employee rows of ids $3 into one row of
// consolidation_previous_chunk, the chunk's: the employee rows and their concept
// rows, whole, as two json arrays (row_to_json keeps every column by name, the
// application's too; made as each row is deleted, it spares the CTE a copy of the
// row), and deletes them, concepts first (no cascade is assumed,
// docs/database.md). It re-stamps the rows of ids $4, kept, with the run's id and
// records them with their previous run ids $5 (NULL: written by no run). One json
// row a chunk costs a fraction of one jsonb row an employee: to_jsonb and
// jsonb_agg built a binary tree of every row, and the employee rows' index and
// toast entries came with it (docs/benchmarks.md, "Re-runs").
const sqlSavePrevious = `
WITH old_concepts AS (
	DELETE FROM nomina_concepto_empleado_consolidado c
	WHERE c.empleado_consolidado_id = ANY($3::bigint[])
	RETURNING row_to_json(c) AS r),
old_employees AS (
	DELETE FROM nomina_empleado_consolidado e WHERE e.id = ANY($3::bigint[])
	RETURNING row_to_json(e) AS r),
kept AS (
	UPDATE nomina_empleado_consolidado e SET consolidation_run_id = $1 WHERE e.id = ANY($4::bigint[])
	RETURNING e.id),
saved AS (
	INSERT INTO consolidation_previous_chunk (run_id, chunk_index, employees, concepts, kept_ids, kept_run_ids)
	SELECT $1, $2, (SELECT coalesce(json_agg(o.r), '[]') FROM old_employees o),
		(SELECT coalesce(json_agg(o.r), '[]') FROM old_concepts o), $4, $5
	RETURNING json_array_length(employees))
SELECT (SELECT * FROM saved), (SELECT count(*) FROM old_employees), (SELECT count(*) FROM kept)`

// replacePrevious settles the closing's previous rows of the employees of recs,
// in the commit transaction of chunk index, before anything is written: the rows
// of employees whose result is unchanged are kept and re-stamped with runID, the
// others saved and deleted. It returns the records still to write and the
// summary of the kept ones (the chunk's share of the control totals counts
// both). A chunk with nothing to replace (every chunk of a closing's first run)
// costs one statement of index probes.
func replacePrevious(ctx context.Context, tx pgx.Tx, closingID, runID int64, index int, recs []rules.Consolidated) ([]rules.Consolidated, WriteSummary, error) {
	var kept WriteSummary
	if len(recs) == 0 {
		return recs, kept, nil
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
	prev, err := readPrevious(ctx, tx, closingID, runID, ruts, recs)
	if err != nil {
		return nil, kept, fmt.Errorf("finding the previous rows of %d employees: %w", len(recs), err)
	}
	if len(prev) == 0 {
		return recs, kept, nil
	}
	var replaced, keptIDs []int64
	keptRuns := []*int64{} // not nil: pgx sends nil as SQL NULL
	write := make([]rules.Consolidated, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		p, found := prev[r.RUT]
		if !found {
			write = append(write, *r)
			continue
		}
		delete(prev, r.RUT) // a second record of the RUT is written, and refused
		if !sameResult(p, r) {
			replaced = append(replaced, p.ID)
			write = append(write, *r)
			continue
		}
		keptIDs = append(keptIDs, p.ID)
		var was *int64
		if p.RunID != 0 {
			was = &p.RunID
		}
		keptRuns = append(keptRuns, was)
		kept.add(r)
	}
	var saved, deleted, restamped int64
	if err := tx.QueryRow(ctx, sqlSavePrevious, runID, index, nonNil(replaced), nonNil(keptIDs), keptRuns).
		Scan(&saved, &deleted, &restamped); err != nil {
		return nil, kept, fmt.Errorf("saving the previous rows of %d employees, keeping %d: %w", len(replaced), len(keptIDs), err)
	}
	if saved != int64(len(replaced)) || deleted != saved || restamped != int64(len(keptIDs)) {
		return nil, kept, fmt.Errorf("saving the previous rows of %d employees, keeping %d: %d saved, %d deleted, %d kept",
			len(replaced), len(keptIDs), saved, deleted, restamped)
	}
	return write, kept, nil
}

// readPrevious reads the closing's rows of ruts written by another run than
// runID, by RUT, and the concept rows of those whose employee row is what its
// record (the first of recs with the RUT) would write: only they can be kept, so
// a re-run whose employees all changed reads no concept row. Two round trips
// when some employee row matches, one otherwise.
func readPrevious(ctx context.Context, tx pgx.Tx, closingID, runID int64, ruts []string, recs []rules.Consolidated) (map[string]*StoredRecord, error) {
	rows, err := tx.Query(ctx, sqlFindPrevious, closingID, ruts, runID)
	if err != nil {
		return nil, err
	}
	var other bool
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredRecord, error) {
		var r StoredRecord
		err := row.Scan(append(scanTargets(employeeColumns, &r), &other)...)
		return r, err
	})
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	prev := make(map[string]*StoredRecord, len(stored))
	for i := range stored {
		prev[stored[i].RUT] = &stored[i]
	}
	byID := make(map[int64]*StoredRecord, len(stored))
	var ids []int64
	for i := range recs {
		if p := prev[recs[i].RUT]; p != nil && byID[p.ID] == nil && sameEmployee(p, &recs[i]) {
			byID[p.ID] = p
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return prev, nil
	}
	rows, err = tx.Query(ctx, sqlPreviousConcepts, ids)
	if err != nil {
		return nil, err
	}
	var c storedConcept
	_, err = pgx.ForEachRow(rows, scanTargets(conceptColumns, &c), func() error {
		if r := byID[c.employeeID]; r != nil {
			r.Lines = append(r.Lines, c.line)
		}
		return nil
	})
	return prev, err
}

// sameResult reports whether a stored row and its concept rows (read only for a
// row sameEmployee accepts) hold exactly what writing rec would write.
func sameResult(s *StoredRecord, rec *rules.Consolidated) bool {
	if !sameEmployee(s, rec) || len(s.Lines) != len(rec.Lines) {
		return false
	}
	// Concept codes are unique per employee (the table's UNIQUE); the stored
	// lines come in no particular order.
	byCode := make(map[string]*rules.ConceptLine, len(s.Lines))
	for i := range s.Lines {
		byCode[s.Lines[i].Code] = &s.Lines[i]
	}
	for i := range rec.Lines {
		if l := byCode[rec.Lines[i].Code]; l == nil || *l != rec.Lines[i] {
			return false
		}
		delete(byCode, rec.Lines[i].Code) // a code twice in rec is not what is stored
	}
	return true
}

// sameEmployee reports whether a stored employee row holds exactly what writing
// rec would write in it, every column the service writes but the row's id, run id
// and fecha_consolidacion (a kept row keeps the time its values were written).
// JSON null and an empty array are different values (a nil slice is written as
// null).
func sameEmployee(s *StoredRecord, rec *rules.Consolidated) bool {
	p := &s.Consolidated
	return p.EmpleadoOrigenID == rec.EmpleadoOrigenID && p.RUT == rec.RUT && p.NombreCompleto == rec.NombreCompleto &&
		p.Cargo == rec.Cargo && p.CentroCosto == rec.CentroCosto && p.EsIngreso == rec.EsIngreso &&
		p.EsFiniquito == rec.EsFiniquito && p.TieneAusentismo == rec.TieneAusentismo &&
		p.TotalHaberes == rec.TotalHaberes && p.TotalDescuentos == rec.TotalDescuentos &&
		p.LiquidoPagar == rec.LiquidoPagar && p.DiscrepanciasResueltas == rec.DiscrepanciasResueltas &&
		sameJSONList(p.FuentesUtilizadas, rec.FuentesUtilizadas) && sameJSONList(p.ReglasAplicadas, rec.ReglasAplicadas)
}

// sameJSONList reports whether two string lists are written as the same JSON.
func sameJSONList(a, b []string) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// nonNil is ids, or an empty list in place of nil (pgx sends nil as SQL NULL).
func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

// The saved rows are put back whole, ids included: json_populate_recordset makes
// rows of the table's own type from what row_to_json saved, so every column (the
// application's too) gets its saved value. Employees first, so the concept rows
// find them. consolidation_previous_result holds what a version before
// consolidation_previous_chunk saved (one jsonb row an employee): a run started by
// it and ended by this one finds its first chunks' rows there, so it is restored
// and emptied too (two probes of an empty primary key otherwise).
//
// JSON keeps one null: a json or jsonb column holding JSON null and one holding
// SQL NULL are saved alike, and json_populate_recordset makes SQL NULL of both.
// A json or jsonb column that is NOT NULL held JSON null, so the restore puts
// JSON null back there (fuentes_utilizadas of a record whose list was nil, say);
// the select lists are therefore made from the catalog (restoreColumns) at the
// run's end. In a nullable json column of the application's, the two cannot be
// told apart and SQL NULL comes back.
const (
	sqlRestoreEmployees = `
INSERT INTO nomina_empleado_consolidado ({columns}) OVERRIDING SYSTEM VALUE
SELECT {values} FROM consolidation_previous_chunk s,
	json_populate_recordset(NULL::nomina_empleado_consolidado, s.employees) r
WHERE s.run_id = $1
UNION ALL
SELECT {values} FROM consolidation_previous_result s,
	jsonb_populate_record(NULL::nomina_empleado_consolidado, s.employee) r
WHERE s.run_id = $1`
	sqlRestoreConcepts = `
INSERT INTO nomina_concepto_empleado_consolidado ({columns}) OVERRIDING SYSTEM VALUE
SELECT {values} FROM consolidation_previous_chunk s,
	json_populate_recordset(NULL::nomina_concepto_empleado_consolidado, s.concepts) r
WHERE s.run_id = $1
UNION ALL
SELECT {values} FROM consolidation_previous_result s,
	jsonb_populate_recordset(NULL::nomina_concepto_empleado_consolidado, s.concepts) r
WHERE s.run_id = $1`
	// sqlRestoreColumns is the columns of the result tables in their order, and
	// whether each is a NOT NULL json or jsonb column.
	sqlRestoreColumns = `
SELECT (SELECT c.relname::text FROM pg_class c WHERE c.oid = a.attrelid), a.attname::text,
	a.attnotnull AND a.atttypid IN ('json'::regtype, 'jsonb'::regtype)
FROM pg_attribute a
WHERE a.attrelid IN ('nomina_empleado_consolidado'::regclass, 'nomina_concepto_empleado_consolidado'::regclass)
	AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`
	sqlRestoreRunIDs = `
UPDATE nomina_empleado_consolidado e SET consolidation_run_id = k.run_id
FROM consolidation_previous_chunk s, unnest(s.kept_ids, s.kept_run_ids) AS k(id, run_id)
WHERE s.run_id = $1 AND e.id = k.id AND e.consolidation_run_id = $1`
	sqlDropSaved = `
WITH chunks AS (DELETE FROM consolidation_previous_chunk WHERE run_id = $1)
DELETE FROM consolidation_previous_result WHERE run_id = $1`
)

// settlePrevious settles a run's saved rows at its end, in the transaction that
// ends it. A run that removes its rows (RemoveRows) gets the closing's previous
// rows back exactly as they were: the rows it kept get their previous run ids
// back first, so removing the run's rows leaves them, then the rows it replaced
// are put back. A full run that keeps its
// rows deletes the closing's rows it did not write: employees no longer in the
// libro, and the previous rows of employees whose chunk failed (a full run
// replaces the closing's results; retry_failed adds to its run's). Either way the
// saved rows are dropped. It returns the statements, for the end's batch.
func settlePrevious(ctx context.Context, tx pgx.Tx, closingID, runID int64, mode domain.Mode, removeRows bool) ([]batchStmt, error) {
	var stmts []batchStmt
	switch {
	case removeRows:
		restore, err := restoreStatements(ctx, tx)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, batchStmt{"restoring the run ids of the kept rows", sqlRestoreRunIDs, []any{runID}})
		stmts = append(stmts, removeResults("removing the rows of the run",
			"e.cierre_id = $1 AND e.consolidation_run_id = $2", closingID, runID)...)
		stmts = append(stmts, batchStmt{"restoring the previous employee rows", restore["nomina_empleado_consolidado"], []any{runID}},
			batchStmt{"restoring the previous concept rows", restore["nomina_concepto_empleado_consolidado"], []any{runID}})
	case mode == domain.ModeFull:
		stmts = append(stmts, removeResults("removing the rows the run did not write",
			"e.cierre_id = $1 AND e.consolidation_run_id IS DISTINCT FROM $2", closingID, runID)...)
	}
	return append(stmts, batchStmt{"dropping the saved previous rows", sqlDropSaved, []any{runID}}), nil
}

// restoreStatements makes the restoring INSERTs of both result tables, by table
// name, from their columns as the catalog has them now: every column, a NOT NULL
// json or jsonb column's SQL NULL read as the JSON null it was saved from.
func restoreStatements(ctx context.Context, tx pgx.Tx) (map[string]string, error) {
	rows, err := tx.Query(ctx, sqlRestoreColumns)
	if err != nil {
		return nil, fmt.Errorf("reading the result tables' columns: %w", err)
	}
	type column struct {
		table, name string
		jsonNotNull bool
	}
	cols, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (column, error) {
		var c column
		err := row.Scan(&c.table, &c.name, &c.jsonNotNull)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the result tables' columns: %w", err)
	}
	names := map[string][]string{}
	values := map[string][]string{}
	for _, c := range cols {
		name := pgx.Identifier{c.name}.Sanitize()
		value := "r." + name
		if c.jsonNotNull {
			value = "coalesce(" + value + ", 'null')"
		}
		names[c.table] = append(names[c.table], name)
		values[c.table] = append(values[c.table], value)
	}
	out := map[string]string{}
	for table, sql := range map[string]string{"nomina_empleado_consolidado": sqlRestoreEmployees,
		"nomina_concepto_empleado_consolidado": sqlRestoreConcepts} {
		if len(names[table]) == 0 {
			return nil, fmt.Errorf("reading the result tables' columns: none found for %s", table)
		}
		out[table] = strings.NewReplacer("{columns}", strings.Join(names[table], ", "),
			"{values}", strings.Join(values[table], ", ")).Replace(sql)
	}
	return out, nil
}
