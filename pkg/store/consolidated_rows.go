package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/rules"
)

// StoredRecord is a row of nomina_empleado_consolidado with its concept rows.
type StoredRecord struct {
	ID    int64 // nomina_empleado_consolidado.id
	RunID int64 // consolidation_run_id; 0 when NULL
	rules.Consolidated
}

// The reads of stored rows select the columns the result tables' column tables
// read back (results.go), in their order.
var (
	sqlStoredEmployees = "SELECT " + selectList(employeeColumns) + `
FROM nomina_empleado_consolidado
WHERE cierre_id = $1 AND `
	sqlStoredConcepts = "SELECT " + selectList(conceptColumns) + `
FROM nomina_concepto_empleado_consolidado
WHERE empleado_consolidado_id = ANY($1::bigint[])
ORDER BY empleado_consolidado_id, codigo_concepto`
)

// ReadStoredRecords reads at most limit consolidated rows of a closing whose RUT
// sorts after afterRUT ("": from the first), in RUT order (the closing's unique
// (cierre_id, rut) index), with their concept rows by code: two queries a page.
func ReadStoredRecords(ctx context.Context, q Querier, closingID int64, afterRUT string, limit int) ([]StoredRecord, error) {
	return readStored(ctx, q, closingID, "rut > $2 ORDER BY rut LIMIT $3", afterRUT, limit)
}

// StoredRecordOf reads the consolidated row of a closing's employee by canonical
// RUT, with its concept rows; ok is false when there is none.
func StoredRecordOf(ctx context.Context, q Querier, closingID int64, canonRUT string) (rec StoredRecord, ok bool, err error) {
	recs, err := readStored(ctx, q, closingID, "rut = $2", canonRUT)
	if err != nil || len(recs) == 0 {
		return StoredRecord{}, false, err
	}
	return recs[0], true, nil
}

// readStored plans each of its two queries afresh (DISCARD PLANS in the same
// round trip): the export calls it a page at a time on long-lived sessions, and
// a plan PostgreSQL kept after small closings' pages scanned the whole concept
// table once a page (docs/benchmarks.md, "The same kept plan on the
// coordinator's side").
func readStored(ctx context.Context, q Querier, closingID int64, where string, args ...any) ([]StoredRecord, error) {
	var recs []StoredRecord
	err := queryFresh(ctx, q, sqlStoredEmployees+where, append([]any{closingID}, args...), func(rows pgx.Rows) error {
		var err error
		recs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredRecord, error) {
			var r StoredRecord
			err := row.Scan(scanTargets(employeeColumns, &r)...)
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading consolidated rows of closing %d: %w", closingID, err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(recs))
	index := make(map[int64]int, len(recs))
	for i, r := range recs {
		ids[i], index[r.ID] = r.ID, i
	}
	err = queryFresh(ctx, q, sqlStoredConcepts, []any{ids}, func(rows pgx.Rows) error {
		var c storedConcept
		_, err := pgx.ForEachRow(rows, scanTargets(conceptColumns, &c), func() error {
			r := &recs[index[c.employeeID]]
			r.Lines = append(r.Lines, c.line)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading consolidated concepts of closing %d: %w", closingID, err)
	}
	return recs, nil
}

// queryFresh runs a query planned on the rows as they are (freshPlansBatch).
func queryFresh(ctx context.Context, q Querier, sql string, args []any, read func(pgx.Rows) error) error {
	b := freshPlansBatch()
	b.Queue(sql, args...).Query(read)
	return q.SendBatch(ctx, b).Close()
}

// freshPlansBatch is a batch that begins with DISCARD PLANS: the statements
// queued after it, sent in the same round trip, are planned on the rows as they
// are, not on a generic plan the session kept.
func freshPlansBatch() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(sqlFreshPlans)
	return b
}

// LibroEmployeeOf is the libro row (nomina_empleado_cierre.id) of a closing's
// employee by canonical RUT (R1), through the (cierre_id, canonical RUT) index.
// ErrNotFound when there is none.
func LibroEmployeeOf(ctx context.Context, q Querier, closingID int64, canonRUT string) (int64, error) {
	rows, err := q.Query(ctx, `SELECT id FROM nomina_empleado_cierre
		WHERE cierre_id = $1 AND nomina_rut_canonical(rut) = $2 ORDER BY id LIMIT 2`, closingID, canonRUT)
	if err != nil {
		return 0, fmt.Errorf("finding an employee of closing %d: %w", closingID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	switch {
	case err != nil:
		return 0, fmt.Errorf("finding an employee of closing %d: %w", closingID, err)
	case len(ids) == 0:
		return 0, ErrNotFound
	case len(ids) > 1:
		return 0, &RUTError{Table: "nomina_empleado_cierre", RowID: ids[1]}
	}
	return ids[0], nil
}
