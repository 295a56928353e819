package store

import (
	"context"
	"fmt"
)

// EmployeeCost is what chunk planning knows of one libro employee: the inputs of
// the old Celery design's complexity estimate.
type EmployeeCost struct {
	ID            int64
	Concepts      int
	Discrepancies int
	Movements     int
}

// CountEmployees counts the libro employees of a closing.
func CountEmployees(ctx context.Context, q Querier, closingID int64) (int, error) {
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM nomina_empleado_cierre WHERE cierre_id = $1", closingID).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting employees of closing %d: %w", closingID, err)
	}
	return n, nil
}

// EachEmployee streams the libro employees of a closing in id order. With costs
// false only ids are read; with costs true each employee's concept lines,
// discrepancies and movements are counted too (for the cost-weighted policy).
func EachEmployee(ctx context.Context, q Querier, closingID int64, costs bool, fn func(EmployeeCost)) error {
	sql := "SELECT id, 0, 0, 0 FROM nomina_empleado_cierre WHERE cierre_id = $1 ORDER BY id"
	if costs {
		sql = `
SELECT e.id,
       (SELECT count(*) FROM nomina_registro_concepto_empleado l WHERE l.empleado_id = e.id),
       (SELECT count(*) FROM nomina_discrepanciacierre d WHERE d.cierre_id = $1 AND d.empleado_libro_id = e.id),
       (SELECT count(*) FROM nomina_movimiento_alta_baja m WHERE nomina_rut_canonical(m.rut) = nomina_rut_canonical(e.rut))
     + (SELECT count(*) FROM nomina_movimiento_ausentismo m WHERE nomina_rut_canonical(m.rut) = nomina_rut_canonical(e.rut))
FROM nomina_empleado_cierre e WHERE e.cierre_id = $1 ORDER BY e.id`
	}
	rows, err := q.Query(ctx, sql, closingID)
	if err != nil {
		return fmt.Errorf("reading employees of closing %d: %w", closingID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e EmployeeCost
		if err := rows.Scan(&e.ID, &e.Concepts, &e.Discrepancies, &e.Movements); err != nil {
			return fmt.Errorf("reading employees of closing %d: %w", closingID, err)
		}
		fn(e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading employees of closing %d: %w", closingID, err)
	}
	return nil
}

// CountUnmatchedNovedades counts novedades rows of a closing whose canonical RUT
// matches no libro employee of the closing (R2: they are ignored).
//
// Each novedad looks its libro match up in the (closing, canonical RUT) index,
// so the canonical RUT is computed once a novedad and never for the libro's
// rows, whose values the index holds. Without the OFFSET 0 fence PostgreSQL
// turns the NOT EXISTS into a hash anti join that computes the canonical RUT of
// every libro row of the closing (it does not count the function's cost on the
// hashed side): 0.41 s against 0.09 s at 100,000 employees, on the start's
// path (docs/benchmarks.md, "The serial steps of a large closing").
func CountUnmatchedNovedades(ctx context.Context, q Querier, closingID int64) (int, error) {
	var n int
	err := q.QueryRow(ctx, `
		SELECT count(*) FROM nomina_empleado_cierre_novedades n
		WHERE n.cierre_id = $1 AND NOT EXISTS (
			SELECT 1 FROM nomina_empleado_cierre e
			WHERE e.cierre_id = $1 AND nomina_rut_canonical(e.rut) = nomina_rut_canonical(n.rut)
			OFFSET 0)`, closingID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting unmatched novedades of closing %d: %w", closingID, err)
	}
	return n, nil
}
