package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/rut"
)

// ChunkSources is everything the rules need for one chunk of a closing.
type ChunkSources struct {
	Month     rules.Month
	Employees []rules.Sources // in libro id order
}

// RUTError means a libro or novedades row of the chunk has a RUT that does not
// normalize, or two rows share one. The coordinator refuses such closings before a
// run starts, so a worker only sees it when the data changed under a run.
type RUTError struct {
	Table string
	RowID int64
}

func (e *RUTError) Error() string {
	return fmt.Sprintf("%s row %d: RUT does not normalize or is repeated", e.Table, e.RowID)
}

const (
	sqlChunkLibro = `
SELECT id, rut, nombre, cargo, centro_costo
FROM nomina_empleado_cierre
WHERE cierre_id = $1 AND id BETWEEN $2 AND $3
ORDER BY id`
	// The chunk is a contiguous libro id range: one range scan of the lines'
	// empleado_id index instead of one index descent per employee (= ANY). Lines
	// of another closing's employees with ids in the range are skipped by the
	// reader. valor comes in numeric's binary form, decoded in Go (numericCents):
	// no text conversion on the server.
	sqlChunkLibroLines = `
SELECT empleado_id, id, codigo_concepto, nombre_concepto, valor, tipo_concepto
FROM nomina_registro_concepto_empleado
WHERE empleado_id BETWEEN $1 AND $2`
	sqlChunkNovedades = `
SELECT id, rut, nombre, cargo, centro_costo
FROM nomina_empleado_cierre_novedades
WHERE cierre_id = $1 AND nomina_rut_canonical(rut) = ANY($2::text[])`
	sqlChunkNovedadesLines = `
SELECT l.empleado_id, l.id, l.codigo_concepto, l.nombre_concepto, l.valor, l.tipo_concepto
FROM nomina_registro_concepto_empleado_novedades l
JOIN nomina_empleado_cierre_novedades n ON n.id = l.empleado_id
WHERE n.cierre_id = $1 AND nomina_rut_canonical(n.rut) = ANY($2::text[])`
	sqlChunkAltasBajas = `
SELECT rut, tipo_movimiento, fecha_movimiento, id
FROM nomina_movimiento_alta_baja
WHERE nomina_rut_canonical(rut) = ANY($1::text[]) AND fecha_movimiento BETWEEN $2 AND $3`
	sqlChunkAusentismos = `
SELECT rut, fecha_inicio, fecha_fin, id
FROM nomina_movimiento_ausentismo
WHERE nomina_rut_canonical(rut) = ANY($1::text[])
  AND fecha_inicio <= $3 AND (fecha_fin IS NULL OR fecha_fin >= $2)`
)

// ReadChunk reads the sources of the libro employees of a closing whose ids lie in
// [firstID, lastID]: one query for the libro rows, then one round trip for their
// concept lines, novedades and movements. Matching is by canonical RUT (R1, R2).
func ReadChunk(ctx context.Context, q Querier, c Closing, firstID, lastID int64) (ChunkSources, error) {
	month := rules.Month{Year: c.Anno, Month: time.Month(c.Mes)}
	r := &chunkReader{closingID: c.ID, out: ChunkSources{Month: month}}
	rows, err := q.Query(ctx, sqlChunkLibro, c.ID, firstID, lastID)
	if err != nil {
		return ChunkSources{}, fmt.Errorf("reading libro of closing %d: %w", c.ID, err)
	}
	ruts, err := r.libro(rows)
	if err != nil {
		return ChunkSources{}, err
	}
	if len(ruts) == 0 {
		return r.out, nil
	}

	// Each query is queued with the method that reads its result; pgx calls them
	// in this order, so the novedades rows are known before their lines arrive.
	first, last := month.First(), month.Last()
	b := &pgx.Batch{}
	b.Queue(sqlChunkLibroLines, firstID, lastID).Query(r.libroLines)
	b.Queue(sqlChunkNovedades, c.ID, ruts).Query(r.novedades)
	b.Queue(sqlChunkNovedadesLines, c.ID, ruts).Query(r.novedadesLines)
	b.Queue(sqlChunkAltasBajas, ruts, first, last).Query(r.altasBajas)
	b.Queue(sqlChunkAusentismos, ruts, first, last).Query(r.ausentismos)
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		if !r.started {
			// The batch failed before its first result was read, and pgx called
			// no reader: the error is the libro lines' too.
			return ChunkSources{}, fmt.Errorf("reading libro lines of closing %d: %w", c.ID, err)
		}
		return ChunkSources{}, err // a reader's, already saying what it read
	}
	return r.out, nil
}

// chunkReader builds the sources of one chunk from the results of ReadChunk's
// queries, each read by one of its methods.
type chunkReader struct {
	closingID int64
	out       ChunkSources
	byID      map[int64]int              // libro row id → index in out.Employees
	byRUT     map[string]int             // canonical RUT → index in out.Employees
	novByID   map[int64]*rules.Novedades // novedades row id → its row
	started   bool                       // a result of the batch has been read
}

// libro reads the chunk's libro rows and returns their canonical RUTs.
func (r *chunkReader) libro(rows pgx.Rows) (ruts []string, err error) {
	defer rows.Close()
	r.byID, r.byRUT = map[int64]int{}, map[string]int{}
	for rows.Next() {
		var l rules.Libro
		var nombre, cargo, centro pgtype.Text
		if err := rows.Scan(&l.ID, &l.RawRUT, &nombre, &cargo, &centro); err != nil {
			return nil, fmt.Errorf("reading libro of closing %d: %w", r.closingID, err)
		}
		canon, err := rut.Normalize(l.RawRUT)
		if _, dup := r.byRUT[canon]; err != nil || dup {
			return nil, &RUTError{Table: "nomina_empleado_cierre", RowID: l.ID}
		}
		l.RUT = canon
		l.Nombre, l.Cargo, l.CentroCosto = text(nombre), text(cargo), text(centro)
		r.byID[l.ID] = len(r.out.Employees)
		r.byRUT[canon] = len(r.out.Employees)
		ruts = append(ruts, canon)
		r.out.Employees = append(r.out.Employees, rules.Sources{Libro: l})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading libro of closing %d: %w", r.closingID, err)
	}
	return ruts, nil
}

func (r *chunkReader) libroLines(rows pgx.Rows) error {
	r.started = true
	err := readLines(rows, func(empID int64, l rules.Line) error {
		i, ok := r.byID[empID]
		if !ok {
			return nil // an employee of another closing whose id lies in the chunk's range
		}
		r.out.Employees[i].Libro.Lines = append(r.out.Employees[i].Libro.Lines, l)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading libro lines of closing %d: %w", r.closingID, err)
	}
	return nil
}

// novedades reads the novedades rows, matched to the libro rows by canonical RUT.
func (r *chunkReader) novedades(rows pgx.Rows) error {
	r.novByID = map[int64]*rules.Novedades{}
	for rows.Next() {
		n := &rules.Novedades{}
		var raw string
		var nombre, cargo, centro pgtype.Text
		if err := rows.Scan(&n.ID, &raw, &nombre, &cargo, &centro); err != nil {
			return fmt.Errorf("reading novedades of closing %d: %w", r.closingID, err)
		}
		canon, err := rut.Normalize(raw)
		i, ok := r.byRUT[canon]
		if err != nil || !ok || r.out.Employees[i].Novedades != nil {
			return &RUTError{Table: "nomina_empleado_cierre_novedades", RowID: n.ID}
		}
		n.Nombre, n.Cargo, n.CentroCosto = text(nombre), text(cargo), text(centro)
		r.out.Employees[i].Novedades = n
		r.novByID[n.ID] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading novedades of closing %d: %w", r.closingID, err)
	}
	return nil
}

func (r *chunkReader) novedadesLines(rows pgx.Rows) error {
	err := readLines(rows, func(novID int64, l rules.Line) error {
		n, ok := r.novByID[novID]
		if !ok {
			return fmt.Errorf("novedades line %d names row %d outside the chunk", l.ID, novID)
		}
		n.Lines = append(n.Lines, l)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading novedades lines of closing %d: %w", r.closingID, err)
	}
	return nil
}

// altasBajas reads the movements; rows whose RUT does not normalize are ignored (R7).
func (r *chunkReader) altasBajas(rows pgx.Rows) error {
	for rows.Next() {
		var raw string
		var m rules.AltaBaja
		if err := rows.Scan(&raw, &m.Tipo, &m.Fecha, &m.ID); err != nil {
			return fmt.Errorf("reading movements: %w", err)
		}
		if i, ok := r.employee(raw); ok {
			r.out.Employees[i].AltasBajas = append(r.out.Employees[i].AltasBajas, m)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading movements: %w", err)
	}
	return nil
}

// ausentismos reads the absences; rows whose RUT does not normalize are ignored (R7).
func (r *chunkReader) ausentismos(rows pgx.Rows) error {
	for rows.Next() {
		var raw string
		var a rules.Ausentismo
		var fin pgtype.Date
		if err := rows.Scan(&raw, &a.Inicio, &fin, &a.ID); err != nil {
			return fmt.Errorf("reading absences: %w", err)
		}
		if fin.Valid {
			a.Fin = fin.Time
		}
		if i, ok := r.employee(raw); ok {
			r.out.Employees[i].Ausentismos = append(r.out.Employees[i].Ausentismos, a)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading absences: %w", err)
	}
	return nil
}

// employee is the index of the chunk's employee with the RUT of a movement, if
// the RUT normalizes and is one of the chunk's.
func (r *chunkReader) employee(rawRUT string) (int, bool) {
	canon, err := rut.Normalize(rawRUT)
	if err != nil {
		return 0, false
	}
	i, ok := r.byRUT[canon]
	return i, ok
}

// readLines reads concept lines (owner, id, code, name, value, type). It
// decodes the raw values itself: this is the hottest loop of a worker, and pgx's
// reflective Scan cost more than the rules.
func readLines(rows pgx.Rows, add func(ownerID int64, l rules.Line) error) error {
	// A result that failed before its first row (the connection lost mid-batch)
	// comes closed, with its error and no field descriptions.
	if err := rows.Err(); err != nil {
		return err
	}
	fields := rows.FieldDescriptions()
	if len(fields) != 6 || fields[0].Format != pgx.BinaryFormatCode || fields[1].Format != pgx.BinaryFormatCode ||
		fields[4].Format != pgx.BinaryFormatCode || fields[4].DataTypeOID != pgtype.NumericOID {
		return fmt.Errorf("concept lines: unexpected result shape")
	}
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw[0]) != 8 || len(raw[1]) != 8 || raw[2] == nil || raw[3] == nil || raw[4] == nil || raw[5] == nil {
			return fmt.Errorf("concept lines: unexpected NULL or width")
		}
		l := rules.Line{
			ID:   int64(binary.BigEndian.Uint64(raw[1])),
			Code: string(raw[2]),
			Name: string(raw[3]),
			Type: string(raw[5]),
		}
		v, err := numericCents(raw[4])
		if err != nil {
			return fmt.Errorf("line %d: %w", l.ID, err)
		}
		l.Value = v
		if err := add(int64(binary.BigEndian.Uint64(raw[0])), l); err != nil {
			return err
		}
	}
	return rows.Err()
}

func text(t pgtype.Text) rules.Text { return rules.Text{String: t.String, Valid: t.Valid} }

// AbsenceTypes reads the tipo_ausentismo of the nomina_movimiento_ausentismo rows
// with these ids, trimmed, by id: what an explanation shows of an absence beside
// its dates (the rules read the dates only, ReadChunk).
func AbsenceTypes(ctx context.Context, q Querier, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id, btrim(tipo_ausentismo) FROM nomina_movimiento_ausentismo WHERE id = ANY($1::bigint[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading the types of %d absences: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var typ string
		if err := rows.Scan(&id, &typ); err != nil {
			return nil, fmt.Errorf("reading the types of %d absences: %w", len(ids), err)
		}
		out[id] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the types of %d absences: %w", len(ids), err)
	}
	return out, nil
}
