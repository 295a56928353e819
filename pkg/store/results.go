package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	sqlCopyEmployees = "COPY nomina_empleado_consolidado (" + columnList(employeeColumns) + ") FROM STDIN (FORMAT binary)"
	sqlCopyConcepts  = "COPY nomina_concepto_empleado_consolidado (" + columnList(conceptColumns) + ") FROM STDIN (FORMAT binary)"
)

// employeeRow is what one row of nomina_empleado_consolidado is made of.
type employeeRow struct {
	id, closingID, runID int64 // runID 0 writes NULL
	at                   time.Time
	rec                  *rules.Consolidated
	fuentes, reglas      []byte // JSON
}

// employeeColumns are the columns of nomina_empleado_consolidado that WriteResults
// fills, in the table's order.
var employeeColumns = []copyColumn[employeeRow]{
	{"id", func(c copyBinary, r *employeeRow) copyBinary { return c.int8(r.id) }},
	{"cierre_id", func(c copyBinary, r *employeeRow) copyBinary { return c.int8(r.closingID) }},
	{"empleado_origen_id", func(c copyBinary, r *employeeRow) copyBinary { return c.int8(r.rec.EmpleadoOrigenID) }},
	{"rut", func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.RUT) }},
	{"nombre_completo", func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.NombreCompleto) }},
	{"cargo", func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.Cargo) }},
	{"centro_costo", func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.CentroCosto) }},
	{"es_ingreso", func(c copyBinary, r *employeeRow) copyBinary { return c.bool(r.rec.EsIngreso) }},
	{"es_finiquito", func(c copyBinary, r *employeeRow) copyBinary { return c.bool(r.rec.EsFiniquito) }},
	{"tiene_ausentismo", func(c copyBinary, r *employeeRow) copyBinary { return c.bool(r.rec.TieneAusentismo) }},
	{"total_haberes", func(c copyBinary, r *employeeRow) copyBinary { return c.numeric(int64(r.rec.TotalHaberes)) }},
	{"total_descuentos", func(c copyBinary, r *employeeRow) copyBinary { return c.numeric(int64(r.rec.TotalDescuentos)) }},
	{"liquido_pagar", func(c copyBinary, r *employeeRow) copyBinary { return c.numeric(int64(r.rec.LiquidoPagar)) }},
	{"fuentes_utilizadas", func(c copyBinary, r *employeeRow) copyBinary { return c.jsonb(r.fuentes) }},
	{"reglas_aplicadas", func(c copyBinary, r *employeeRow) copyBinary { return c.jsonb(r.reglas) }},
	{"discrepancias_resueltas", func(c copyBinary, r *employeeRow) copyBinary { return c.int4(int32(r.rec.DiscrepanciasResueltas)) }},
	{"fecha_consolidacion", func(c copyBinary, r *employeeRow) copyBinary { return c.timestamptz(r.at) }},
	{"consolidation_run_id", func(c copyBinary, r *employeeRow) copyBinary {
		if r.runID == 0 {
			return c.null()
		}
		return c.int8(r.runID)
	}},
}

// conceptRow is what one row of nomina_concepto_empleado_consolidado is made of.
type conceptRow struct {
	employeeID int64 // the consolidated employee's id
	line       *rules.ConceptLine
}

// conceptColumns are the columns of nomina_concepto_empleado_consolidado that
// WriteResults fills, in the table's order; id is left to its identity.
var conceptColumns = []copyColumn[conceptRow]{
	{"empleado_consolidado_id", func(c copyBinary, r *conceptRow) copyBinary { return c.int8(r.employeeID) }},
	{"codigo_concepto", func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Code) }},
	{"nombre_concepto", func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Name) }},
	{"valor", func(c copyBinary, r *conceptRow) copyBinary { return c.numeric(int64(r.line.Value)) }},
	{"tipo_concepto", func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Type) }},
	{"fuente_dato", func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Source) }},
}

// WriteResults writes consolidated records and their concept lines with two binary
// COPY streams. Call it inside the transaction that also records the chunk, so an
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
	lines := 0
	for i := range recs {
		lines += len(recs[i].Lines)
	}

	emp, err := encodeEmployees(closingID, runID, at, ids, recs)
	if err != nil {
		return sum, err
	}
	tag, err := copyTraced(ctx, tx.Conn(), "nomina_empleado_consolidado", emp, sqlCopyEmployees)
	if err != nil {
		return sum, fmt.Errorf("copying %d consolidated employees: %w", len(recs), err)
	}
	sum.Employees = int(tag.RowsAffected())

	con, err := encodeConcepts(ids, recs, lines)
	if err != nil {
		return sum, err
	}
	tag, err = copyTraced(ctx, tx.Conn(), "nomina_concepto_empleado_consolidado", con, sqlCopyConcepts)
	if err != nil {
		return sum, fmt.Errorf("copying %d consolidated concepts: %w", lines, err)
	}
	sum.Records = sum.Employees + int(tag.RowsAffected())

	for i := range recs {
		r := &recs[i]
		sum.TotalHaberes += r.TotalHaberes
		sum.TotalDescuentos += r.TotalDescuentos
		sum.LiquidoPagar += r.LiquidoPagar
	}
	return sum, nil
}

// encodeEmployees builds the COPY body of the employee rows, ids[i] being the id of
// recs[i].
func encodeEmployees(closingID, runID int64, at time.Time, ids []int64, recs []rules.Consolidated) ([]byte, error) {
	emp := newCopyBinary(256 * len(recs))
	row := employeeRow{closingID: closingID, runID: runID, at: at}
	for i := range recs {
		r := &recs[i]
		fuentes, err := json.Marshal(r.FuentesUtilizadas)
		if err != nil {
			return nil, err
		}
		reglas, err := json.Marshal(r.ReglasAplicadas)
		if err != nil {
			return nil, err
		}
		for _, v := range []money.Cents{r.TotalHaberes, r.TotalDescuentos, r.LiquidoPagar} {
			if !v.Fits() {
				return nil, &rules.OverflowError{EmpleadoID: r.EmpleadoOrigenID, Field: "a total"}
			}
		}
		row.id, row.rec, row.fuentes, row.reglas = ids[i], r, fuentes, reglas
		emp = appendRow(emp, employeeColumns, &row)
	}
	return emp.bytes(), nil
}

// encodeConcepts builds the COPY body of the concept rows of recs; lines is their
// number.
func encodeConcepts(ids []int64, recs []rules.Consolidated, lines int) ([]byte, error) {
	con := newCopyBinary(96 * lines)
	var row conceptRow
	for i := range recs {
		for j := range recs[i].Lines {
			l := &recs[i].Lines[j]
			if !l.Value.Fits() {
				return nil, &rules.OverflowError{EmpleadoID: recs[i].EmpleadoOrigenID, Field: "concept " + l.Code}
			}
			row.employeeID, row.line = ids[i], l
			con = appendRow(con, conceptColumns, &row)
		}
	}
	return con.bytes(), nil
}
