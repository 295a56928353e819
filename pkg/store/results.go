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

// add counts rec as written, with its concept lines.
func (s *WriteSummary) add(rec *rules.Consolidated) {
	s.Employees++
	s.Records += 1 + len(rec.Lines)
	s.TotalHaberes += rec.TotalHaberes
	s.TotalDescuentos += rec.TotalDescuentos
	s.LiquidoPagar += rec.LiquidoPagar
}

// plus is s and o added up.
func (s WriteSummary) plus(o WriteSummary) WriteSummary {
	return WriteSummary{Employees: s.Employees + o.Employees, Records: s.Records + o.Records,
		TotalHaberes: s.TotalHaberes + o.TotalHaberes, TotalDescuentos: s.TotalDescuentos + o.TotalDescuentos,
		LiquidoPagar: s.LiquidoPagar + o.LiquidoPagar}
}

// employeeRow is what one row of nomina_empleado_consolidado is written from.
type employeeRow struct {
	id, closingID, runID int64 // runID 0 writes NULL
	at                   time.Time
	rec                  *rules.Consolidated
	fuentes, reglas      []byte // JSON
}

// employeeColumns are the columns of nomina_empleado_consolidado, in the table's
// order: what WriteResults writes and ReadStoredRecords reads back. A result
// field is one entry here, plus its entry in pkg/schema/required_columns.go
// (TestResultColumnsAreRequiredColumns) and a migration.
var employeeColumns = []copyColumn[employeeRow, StoredRecord]{
	{name: "id", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.int8(r.id) },
		scan: func(s *StoredRecord) any { return &s.ID }},
	{name: "cierre_id", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.int8(r.closingID) }},
	{name: "empleado_origen_id", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.int8(r.rec.EmpleadoOrigenID) },
		scan: func(s *StoredRecord) any { return &s.EmpleadoOrigenID }},
	{name: "rut", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.RUT) },
		scan: func(s *StoredRecord) any { return &s.RUT }},
	{name: "nombre_completo", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.NombreCompleto) },
		scan: func(s *StoredRecord) any { return &s.NombreCompleto }},
	{name: "cargo", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.Cargo) },
		scan: func(s *StoredRecord) any { return &s.Cargo }},
	{name: "centro_costo", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.text(r.rec.CentroCosto) },
		scan: func(s *StoredRecord) any { return &s.CentroCosto }},
	{name: "es_ingreso", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.bool(r.rec.EsIngreso) },
		scan: func(s *StoredRecord) any { return &s.EsIngreso }},
	{name: "es_finiquito", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.bool(r.rec.EsFiniquito) },
		scan: func(s *StoredRecord) any { return &s.EsFiniquito }},
	{name: "tiene_ausentismo", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.bool(r.rec.TieneAusentismo) },
		scan: func(s *StoredRecord) any { return &s.TieneAusentismo }},
	{name: "total_haberes", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.numeric(int64(r.rec.TotalHaberes)) },
		scan: func(s *StoredRecord) any { return &s.TotalHaberes }},
	{name: "total_descuentos", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.numeric(int64(r.rec.TotalDescuentos)) },
		scan: func(s *StoredRecord) any { return &s.TotalDescuentos }},
	{name: "liquido_pagar", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.numeric(int64(r.rec.LiquidoPagar)) },
		scan: func(s *StoredRecord) any { return &s.LiquidoPagar }},
	{name: "fuentes_utilizadas", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.jsonb(r.fuentes) },
		scan: func(s *StoredRecord) any { return &s.FuentesUtilizadas }},
	{name: "reglas_aplicadas", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.jsonb(r.reglas) },
		scan: func(s *StoredRecord) any { return &s.ReglasAplicadas }},
	{name: "discrepancias_resueltas", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.int4(int32(r.rec.DiscrepanciasResueltas)) },
		scan: func(s *StoredRecord) any { return &s.DiscrepanciasResueltas }},
	{name: "fecha_consolidacion", encode: func(c copyBinary, r *employeeRow) copyBinary { return c.timestamptz(r.at) }},
	{name: "consolidation_run_id", encode: func(c copyBinary, r *employeeRow) copyBinary {
		if r.runID == 0 {
			return c.null()
		}
		return c.int8(r.runID)
	}, scan: func(s *StoredRecord) any { return &s.RunID }, selectAs: "coalesce(consolidation_run_id, 0)"},
}

// conceptRow is what one row of nomina_concepto_empleado_consolidado is written from.
type conceptRow struct {
	employeeID int64 // the consolidated employee's id
	line       *rules.ConceptLine
}

// storedConcept is a row of nomina_concepto_empleado_consolidado read back.
type storedConcept struct {
	employeeID int64
	line       rules.ConceptLine
}

// conceptColumns are the columns of nomina_concepto_empleado_consolidado, in the
// table's order, that WriteResults writes and ReadStoredRecords reads back; id is
// left to its identity.
var conceptColumns = []copyColumn[conceptRow, storedConcept]{
	{name: "empleado_consolidado_id", encode: func(c copyBinary, r *conceptRow) copyBinary { return c.int8(r.employeeID) },
		scan: func(s *storedConcept) any { return &s.employeeID }},
	{name: "codigo_concepto", encode: func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Code) },
		scan: func(s *storedConcept) any { return &s.line.Code }},
	{name: "nombre_concepto", encode: func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Name) },
		scan: func(s *storedConcept) any { return &s.line.Name }},
	{name: "valor", encode: func(c copyBinary, r *conceptRow) copyBinary { return c.numeric(int64(r.line.Value)) },
		scan: func(s *storedConcept) any { return &s.line.Value }},
	{name: "tipo_concepto", encode: func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Type) },
		scan: func(s *storedConcept) any { return &s.line.Type }},
	{name: "fuente_dato", encode: func(c copyBinary, r *conceptRow) copyBinary { return c.text(r.line.Source) },
		scan: func(s *storedConcept) any { return &s.line.Source }},
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
