package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rules"
)

// WriteSummary counts what WriteResults wrote and adds up its amounts, the
// chunk's share of the run's control totals.
type WriteSummary struct {
	Employees       int
	Records         int // employee rows plus concept rows
	TotalHaberes    money.Cents
	TotalDescuentos money.Cents
	LiquidoPagar    money.Cents
}

var (
	employeeColumns = []string{
		"id", "cierre_id", "empleado_origen_id", "rut", "nombre_completo", "cargo", "centro_costo",
		"es_ingreso", "es_finiquito", "tiene_ausentismo", "total_haberes", "total_descuentos", "liquido_pagar",
		"fuentes_utilizadas", "reglas_aplicadas", "discrepancias_resueltas", "fecha_consolidacion",
		"consolidation_run_id",
	}
	conceptColumns = []string{
		"empleado_consolidado_id", "codigo_concepto", "nombre_concepto", "valor", "tipo_concepto", "fuente_dato",
	}
)

// WriteResults writes consolidated records and their concept lines with two COPY
// streams. Call it inside the transaction that also records the chunk, so an
// employee's row and its concept rows are written together or not at all. The
// employee ids are taken from the table's sequence in one query first, so concept
// rows can reference them without a round trip per employee. runID 0 writes NULL.
func WriteResults(ctx context.Context, tx pgx.Tx, closingID, runID int64, at time.Time, recs []rules.Consolidated) (WriteSummary, error) {
	var sum WriteSummary
	if len(recs) == 0 {
		return sum, nil
	}
	rows, err := tx.Query(ctx,
		"SELECT nextval(pg_get_serial_sequence('nomina_empleado_consolidado', 'id')) FROM generate_series(1, $1)", len(recs))
	if err != nil {
		return sum, fmt.Errorf("allocating %d consolidated ids: %w", len(recs), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return sum, fmt.Errorf("allocating %d consolidated ids: %w", len(recs), err)
	}
	run := pgtype.Int8{Int64: runID, Valid: runID != 0}
	lines := 0
	for i := range recs {
		lines += len(recs[i].Lines)
	}

	i := 0
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"nomina_empleado_consolidado"}, employeeColumns,
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(recs) {
				return nil, nil
			}
			r := &recs[i]
			fuentes, err := json.Marshal(r.FuentesUtilizadas)
			if err != nil {
				return nil, err
			}
			reglas, err := json.Marshal(r.ReglasAplicadas)
			if err != nil {
				return nil, err
			}
			row := []any{
				ids[i], closingID, r.EmpleadoOrigenID, r.RUT, r.NombreCompleto, r.Cargo, r.CentroCosto,
				r.EsIngreso, r.EsFiniquito, r.TieneAusentismo, r.TotalHaberes, r.TotalDescuentos, r.LiquidoPagar,
				fuentes, reglas, int32(r.DiscrepanciasResueltas), at, run,
			}
			i++
			return row, nil
		}))
	if err != nil {
		return sum, fmt.Errorf("copying %d consolidated employees: %w", len(recs), err)
	}
	sum.Employees = int(n)

	emp, line := 0, 0
	n, err = tx.CopyFrom(ctx, pgx.Identifier{"nomina_concepto_empleado_consolidado"}, conceptColumns,
		pgx.CopyFromFunc(func() ([]any, error) {
			for emp < len(recs) && line == len(recs[emp].Lines) {
				emp, line = emp+1, 0
			}
			if emp == len(recs) {
				return nil, nil
			}
			l := &recs[emp].Lines[line]
			line++
			return []any{ids[emp], l.Code, l.Name, l.Value, l.Type, l.Source}, nil
		}))
	if err != nil {
		return sum, fmt.Errorf("copying %d consolidated concepts: %w", lines, err)
	}
	sum.Records = sum.Employees + int(n)

	for i := range recs {
		r := &recs[i]
		sum.TotalHaberes += r.TotalHaberes
		sum.TotalDescuentos += r.TotalDescuentos
		sum.LiquidoPagar += r.LiquidoPagar
	}
	return sum, nil
}
