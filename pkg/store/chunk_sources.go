package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nominacl/consolidation/pkg/money"
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
	sqlChunkLibroLines = `
SELECT empleado_id, id, codigo_concepto, nombre_concepto, valor::text, tipo_concepto
FROM nomina_registro_concepto_empleado
WHERE empleado_id = ANY($1::bigint[])`
	sqlChunkNovedades = `
SELECT id, rut, nombre, cargo, centro_costo
FROM nomina_empleado_cierre_novedades
WHERE cierre_id = $1 AND nomina_rut_canonical(rut) = ANY($2::text[])`
	sqlChunkNovedadesLines = `
SELECT l.empleado_id, l.id, l.codigo_concepto, l.nombre_concepto, l.valor::text, l.tipo_concepto
FROM nomina_registro_concepto_empleado_novedades l
JOIN nomina_empleado_cierre_novedades n ON n.id = l.empleado_id
WHERE n.cierre_id = $1 AND nomina_rut_canonical(n.rut) = ANY($2::text[])`
	sqlChunkAltasBajas = `
SELECT rut, tipo_movimiento, fecha_movimiento
FROM nomina_movimiento_alta_baja
WHERE nomina_rut_canonical(rut) = ANY($1::text[]) AND fecha_movimiento BETWEEN $2 AND $3`
	sqlChunkAusentismos = `
SELECT rut, fecha_inicio, fecha_fin
FROM nomina_movimiento_ausentismo
WHERE nomina_rut_canonical(rut) = ANY($1::text[])
  AND fecha_inicio <= $3 AND (fecha_fin IS NULL OR fecha_fin >= $2)`
)

// ReadChunk reads the sources of the libro employees of a closing whose ids lie in
// [firstID, lastID]: one query for the libro rows, then one round trip for their
// concept lines, novedades and movements. Matching is by canonical RUT (R1, R2).
func ReadChunk(ctx context.Context, q Querier, c Closing, firstID, lastID int64) (ChunkSources, error) {
	month := rules.Month{Year: c.Anno, Month: time.Month(c.Mes)}
	out := ChunkSources{Month: month}

	rows, err := q.Query(ctx, sqlChunkLibro, c.ID, firstID, lastID)
	if err != nil {
		return ChunkSources{}, fmt.Errorf("reading libro of closing %d: %w", c.ID, err)
	}
	byID := map[int64]int{}
	byRUT := map[string]int{}
	var ids []int64
	var ruts []string
	for rows.Next() {
		var l rules.Libro
		var nombre, cargo, centro pgtype.Text
		if err := rows.Scan(&l.ID, &l.RawRUT, &nombre, &cargo, &centro); err != nil {
			rows.Close()
			return ChunkSources{}, fmt.Errorf("reading libro of closing %d: %w", c.ID, err)
		}
		canon, err := rut.Normalize(l.RawRUT)
		if _, dup := byRUT[canon]; err != nil || dup {
			rows.Close()
			return ChunkSources{}, &RUTError{Table: "nomina_empleado_cierre", RowID: l.ID}
		}
		l.RUT = canon
		l.Nombre, l.Cargo, l.CentroCosto = text(nombre), text(cargo), text(centro)
		byID[l.ID] = len(out.Employees)
		byRUT[canon] = len(out.Employees)
		ids = append(ids, l.ID)
		ruts = append(ruts, canon)
		out.Employees = append(out.Employees, rules.Sources{Libro: l})
	}
	if err := rows.Err(); err != nil {
		return ChunkSources{}, fmt.Errorf("reading libro of closing %d: %w", c.ID, err)
	}
	if len(ids) == 0 {
		return out, nil
	}

	first, last := month.First(), month.Last()
	b := &pgx.Batch{}
	b.Queue(sqlChunkLibroLines, ids)
	b.Queue(sqlChunkNovedades, c.ID, ruts)
	b.Queue(sqlChunkNovedadesLines, c.ID, ruts)
	b.Queue(sqlChunkAltasBajas, ruts, first, last)
	b.Queue(sqlChunkAusentismos, ruts, first, last)
	br := q.SendBatch(ctx, b)
	defer br.Close()

	// Libro lines.
	if err := readLines(br, func(empID int64, l rules.Line) error {
		i, ok := byID[empID]
		if !ok {
			return fmt.Errorf("libro line %d names employee %d outside the chunk", l.ID, empID)
		}
		out.Employees[i].Libro.Lines = append(out.Employees[i].Libro.Lines, l)
		return nil
	}); err != nil {
		return ChunkSources{}, fmt.Errorf("reading libro lines of closing %d: %w", c.ID, err)
	}

	// Novedades rows, matched by canonical RUT.
	novByID := map[int64]*rules.Novedades{}
	rows, err = br.Query()
	if err != nil {
		return ChunkSources{}, fmt.Errorf("reading novedades of closing %d: %w", c.ID, err)
	}
	for rows.Next() {
		n := &rules.Novedades{}
		var raw string
		var nombre, cargo, centro pgtype.Text
		if err := rows.Scan(&n.ID, &raw, &nombre, &cargo, &centro); err != nil {
			rows.Close()
			return ChunkSources{}, fmt.Errorf("reading novedades of closing %d: %w", c.ID, err)
		}
		canon, err := rut.Normalize(raw)
		i, ok := byRUT[canon]
		if err != nil || !ok || out.Employees[i].Novedades != nil {
			rows.Close()
			return ChunkSources{}, &RUTError{Table: "nomina_empleado_cierre_novedades", RowID: n.ID}
		}
		n.Nombre, n.Cargo, n.CentroCosto = text(nombre), text(cargo), text(centro)
		out.Employees[i].Novedades = n
		novByID[n.ID] = n
	}
	if err := rows.Err(); err != nil {
		return ChunkSources{}, fmt.Errorf("reading novedades of closing %d: %w", c.ID, err)
	}
	if err := readLines(br, func(novID int64, l rules.Line) error {
		n, ok := novByID[novID]
		if !ok {
			return fmt.Errorf("novedades line %d names row %d outside the chunk", l.ID, novID)
		}
		n.Lines = append(n.Lines, l)
		return nil
	}); err != nil {
		return ChunkSources{}, fmt.Errorf("reading novedades lines of closing %d: %w", c.ID, err)
	}

	// Movements: rows whose RUT does not normalize are ignored (R7).
	rows, err = br.Query()
	if err != nil {
		return ChunkSources{}, fmt.Errorf("reading movements: %w", err)
	}
	for rows.Next() {
		var raw string
		var m rules.AltaBaja
		if err := rows.Scan(&raw, &m.Tipo, &m.Fecha); err != nil {
			rows.Close()
			return ChunkSources{}, fmt.Errorf("reading movements: %w", err)
		}
		if canon, err := rut.Normalize(raw); err == nil {
			if i, ok := byRUT[canon]; ok {
				out.Employees[i].AltasBajas = append(out.Employees[i].AltasBajas, m)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return ChunkSources{}, fmt.Errorf("reading movements: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return ChunkSources{}, fmt.Errorf("reading absences: %w", err)
	}
	for rows.Next() {
		var raw string
		var a rules.Ausentismo
		var fin pgtype.Date
		if err := rows.Scan(&raw, &a.Inicio, &fin); err != nil {
			rows.Close()
			return ChunkSources{}, fmt.Errorf("reading absences: %w", err)
		}
		if fin.Valid {
			a.Fin = fin.Time
		}
		if canon, err := rut.Normalize(raw); err == nil {
			if i, ok := byRUT[canon]; ok {
				out.Employees[i].Ausentismos = append(out.Employees[i].Ausentismos, a)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return ChunkSources{}, fmt.Errorf("reading absences: %w", err)
	}
	return out, br.Close()
}

// readLines reads concept lines (owner, id, code, name, value as text, type). It
// decodes the raw values itself: this is the hottest loop of a worker, and pgx's
// reflective Scan cost more than the rules.
func readLines(br pgx.BatchResults, add func(ownerID int64, l rules.Line) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	if len(fields) != 6 || fields[0].Format != pgx.BinaryFormatCode || fields[1].Format != pgx.BinaryFormatCode {
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
		v, err := money.Parse(string(raw[4]))
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
