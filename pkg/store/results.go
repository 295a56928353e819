package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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
	sqlCopyEmployees = "COPY nomina_empleado_consolidado (" + strings.Join(employeeColumns, ", ") + ") FROM STDIN (FORMAT binary)"
	sqlCopyConcepts  = "COPY nomina_concepto_empleado_consolidado (" + strings.Join(conceptColumns, ", ") + ") FROM STDIN (FORMAT binary)"

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
	pg := tx.Conn().PgConn()
	tag, err := pg.CopyFrom(ctx, bytes.NewReader(emp), sqlCopyEmployees)
	if err != nil {
		return sum, fmt.Errorf("copying %d consolidated employees: %w", len(recs), err)
	}
	sum.Employees = int(tag.RowsAffected())

	con, err := encodeConcepts(ids, recs, lines)
	if err != nil {
		return sum, err
	}
	tag, err = pg.CopyFrom(ctx, bytes.NewReader(con), sqlCopyConcepts)
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
		emp.row(len(employeeColumns))
		emp.int8(ids[i])
		emp.int8(closingID)
		emp.int8(r.EmpleadoOrigenID)
		emp.text(r.RUT)
		emp.text(r.NombreCompleto)
		emp.text(r.Cargo)
		emp.text(r.CentroCosto)
		emp.bool(r.EsIngreso)
		emp.bool(r.EsFiniquito)
		emp.bool(r.TieneAusentismo)
		emp.numeric(int64(r.TotalHaberes))
		emp.numeric(int64(r.TotalDescuentos))
		emp.numeric(int64(r.LiquidoPagar))
		emp.jsonb(fuentes)
		emp.jsonb(reglas)
		emp.int4(int32(r.DiscrepanciasResueltas))
		emp.timestamptz(at)
		if runID != 0 {
			emp.int8(runID)
		} else {
			emp.null()
		}
	}
	return emp.bytes(), nil
}

// encodeConcepts builds the COPY body of the concept rows of recs; lines is their
// number.
func encodeConcepts(ids []int64, recs []rules.Consolidated, lines int) ([]byte, error) {
	con := newCopyBinary(96 * lines)
	for i := range recs {
		for _, l := range recs[i].Lines {
			if !l.Value.Fits() {
				return nil, &rules.OverflowError{EmpleadoID: recs[i].EmpleadoOrigenID, Field: "concept " + l.Code}
			}
			con.row(len(conceptColumns))
			con.int8(ids[i])
			con.text(l.Code)
			con.text(l.Name)
			con.numeric(int64(l.Value))
			con.text(l.Type)
			con.text(l.Source)
		}
	}
	return con.bytes(), nil
}

// ReadResults reads a closing's consolidated records back, sorted by RUT, with
// their lines sorted by code: the form the rules produce, so a run's output can be
// compared with the rules applied in one process.
func ReadResults(ctx context.Context, q Querier, closingID int64) ([]rules.Consolidated, error) {
	rows, err := q.Query(ctx, `
		SELECT e.id, e.empleado_origen_id, e.rut, e.nombre_completo, e.cargo, e.centro_costo, e.es_ingreso,
		       e.es_finiquito, e.tiene_ausentismo, e.total_haberes, e.total_descuentos, e.liquido_pagar,
		       e.fuentes_utilizadas, e.reglas_aplicadas, e.discrepancias_resueltas
		FROM nomina_empleado_consolidado e WHERE e.cierre_id = $1 ORDER BY e.rut`, closingID)
	if err != nil {
		return nil, fmt.Errorf("reading results of closing %d: %w", closingID, err)
	}
	var out []rules.Consolidated
	index := map[int64]int{}
	for rows.Next() {
		var id int64
		var c rules.Consolidated
		if err := rows.Scan(&id, &c.EmpleadoOrigenID, &c.RUT, &c.NombreCompleto, &c.Cargo, &c.CentroCosto,
			&c.EsIngreso, &c.EsFiniquito, &c.TieneAusentismo, &c.TotalHaberes, &c.TotalDescuentos, &c.LiquidoPagar,
			&c.FuentesUtilizadas, &c.ReglasAplicadas, &c.DiscrepanciasResueltas); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading results of closing %d: %w", closingID, err)
		}
		index[id] = len(out)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading results of closing %d: %w", closingID, err)
	}
	rows, err = q.Query(ctx, `
		SELECT c.empleado_consolidado_id, c.codigo_concepto, c.nombre_concepto, c.valor, c.tipo_concepto, c.fuente_dato
		FROM nomina_concepto_empleado_consolidado c
		JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id
		WHERE e.cierre_id = $1 ORDER BY c.empleado_consolidado_id, c.codigo_concepto`, closingID)
	if err != nil {
		return nil, fmt.Errorf("reading result concepts of closing %d: %w", closingID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var owner int64
		var l rules.ConceptLine
		if err := rows.Scan(&owner, &l.Code, &l.Name, &l.Value, &l.Type, &l.Source); err != nil {
			return nil, fmt.Errorf("reading result concepts of closing %d: %w", closingID, err)
		}
		i := index[owner]
		out[i].Lines = append(out[i].Lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading result concepts of closing %d: %w", closingID, err)
	}
	// Sort in Go: the database's collation may order text differently.
	slices.SortFunc(out, func(a, b rules.Consolidated) int { return cmp.Compare(a.RUT, b.RUT) })
	for i := range out {
		slices.SortFunc(out[i].Lines, func(a, b rules.ConceptLine) int { return cmp.Compare(a.Code, b.Code) })
	}
	return out, nil
}
