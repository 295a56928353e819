package schema

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RequiredColumn is a column of an application table the service reads or writes
// (docs/database.md#data-contract), with the type it needs.
type RequiredColumn struct {
	Table, Column string
	// Type is how PostgreSQL spells it: bigint, integer, smallint, varchar(N) (any
	// length ≥ N, or text, will do), numeric(P,S), date, boolean, jsonb, timestamptz,
	// double precision.
	Type string
	// Written columns take exactly Type (the binary COPY and the inserts depend on
	// it); a read integer column may be of any integer width.
	Written bool
}

func read(table, typ string, columns ...string) []RequiredColumn {
	return columnsOf(table, typ, false, columns)
}

func written(table, typ string, columns ...string) []RequiredColumn {
	return columnsOf(table, typ, true, columns)
}

func columnsOf(table, typ string, w bool, columns []string) []RequiredColumn {
	out := make([]RequiredColumn, len(columns))
	for i, c := range columns {
		out[i] = RequiredColumn{Table: table, Column: c, Type: typ, Written: w}
	}
	return out
}

// RequiredColumns lists every column of the application's tables the service reads
// or writes: the one place that says what the service needs of a database it does
// not own. Validate checks a database against it.
var RequiredColumns = slices.Concat(
	read("nomina_cierrenomina", "bigint", "id"),
	read("nomina_cierrenomina", "smallint", "mes"),
	read("nomina_cierrenomina", "integer", "anno"),
	written("nomina_cierrenomina", "varchar(40)", "estado"),

	read("nomina_discrepanciacierre", "bigint", "id", "cierre_id", "empleado_libro_id"),

	read("nomina_empleado_cierre", "bigint", "id", "cierre_id"),
	read("nomina_empleado_cierre", "varchar(15)", "rut"),
	read("nomina_empleado_cierre", "varchar(200)", "nombre"),
	read("nomina_empleado_cierre", "varchar(100)", "cargo"),
	read("nomina_empleado_cierre", "varchar(50)", "centro_costo"),

	read("nomina_registro_concepto_empleado", "bigint", "id", "empleado_id"),
	read("nomina_registro_concepto_empleado", "varchar(10)", "codigo_concepto"),
	read("nomina_registro_concepto_empleado", "varchar(200)", "nombre_concepto"),
	read("nomina_registro_concepto_empleado", "numeric(12,2)", "valor"),
	read("nomina_registro_concepto_empleado", "varchar(20)", "tipo_concepto"),

	read("nomina_empleado_cierre_novedades", "bigint", "id", "cierre_id"),
	read("nomina_empleado_cierre_novedades", "varchar(15)", "rut"),
	read("nomina_empleado_cierre_novedades", "varchar(200)", "nombre"),
	read("nomina_empleado_cierre_novedades", "varchar(100)", "cargo"),
	read("nomina_empleado_cierre_novedades", "varchar(50)", "centro_costo"),

	read("nomina_registro_concepto_empleado_novedades", "bigint", "id", "empleado_id"),
	read("nomina_registro_concepto_empleado_novedades", "varchar(10)", "codigo_concepto"),
	read("nomina_registro_concepto_empleado_novedades", "varchar(200)", "nombre_concepto"),
	read("nomina_registro_concepto_empleado_novedades", "numeric(12,2)", "valor"),
	read("nomina_registro_concepto_empleado_novedades", "varchar(20)", "tipo_concepto"),

	read("nomina_movimiento_alta_baja", "varchar(15)", "rut"),
	read("nomina_movimiento_alta_baja", "varchar(20)", "tipo_movimiento"),
	read("nomina_movimiento_alta_baja", "date", "fecha_movimiento"),

	read("nomina_movimiento_ausentismo", "varchar(15)", "rut"),
	read("nomina_movimiento_ausentismo", "date", "fecha_inicio", "fecha_fin"),
	// Shown by ExplainEmployee beside an absence's dates; the rules do not read it.
	read("nomina_movimiento_ausentismo", "varchar(1)", "tipo_ausentismo"),

	written("nomina_empleado_consolidado", "bigint", "id", "cierre_id", "empleado_origen_id", "consolidation_run_id"),
	written("nomina_empleado_consolidado", "varchar(15)", "rut"),
	written("nomina_empleado_consolidado", "varchar(200)", "nombre_completo"),
	written("nomina_empleado_consolidado", "varchar(100)", "cargo"),
	written("nomina_empleado_consolidado", "varchar(50)", "centro_costo"),
	written("nomina_empleado_consolidado", "boolean", "es_ingreso", "es_finiquito", "tiene_ausentismo"),
	written("nomina_empleado_consolidado", "numeric(12,2)", "total_haberes", "total_descuentos", "liquido_pagar"),
	written("nomina_empleado_consolidado", "jsonb", "fuentes_utilizadas", "reglas_aplicadas"),
	written("nomina_empleado_consolidado", "integer", "discrepancias_resueltas"),
	written("nomina_empleado_consolidado", "timestamptz", "fecha_consolidacion"),

	written("nomina_concepto_empleado_consolidado", "bigint", "id", "empleado_consolidado_id"),
	written("nomina_concepto_empleado_consolidado", "varchar(10)", "codigo_concepto"),
	written("nomina_concepto_empleado_consolidado", "varchar(200)", "nombre_concepto"),
	written("nomina_concepto_empleado_consolidado", "numeric(12,2)", "valor"),
	written("nomina_concepto_empleado_consolidado", "varchar(20)", "tipo_concepto", "fuente_dato"),

	written("nomina_metrica_consolidacion", "bigint", "id", "cierre_id", "consolidation_run_id"),
	written("nomina_metrica_consolidacion", "integer", "total_empleados", "chunks_procesados", "chunks_exitosos",
		"registros_creados", "chunk_size_utilizado", "workers_utilizados"),
	written("nomina_metrica_consolidacion", "double precision", "tiempo_total", "tiempo_promedio_chunk",
		"throughput_empleados_sec", "throughput_registros_sec", "memoria_pico_mb", "cpu_promedio_percent"),
	written("nomina_metrica_consolidacion", "varchar(20)", "version_algoritmo"),
	written("nomina_metrica_consolidacion", "timestamptz", "fecha_procesamiento"),

	// The service's own run table: columns added after it was first created
	// (a database migrated before them fails here, by name, not mid-run).
	written("consolidation_run", "text", "requested_by", "cancelled_by", "traceparent", "after_end_claimed_by"),
	written("consolidation_run", "timestamptz", "after_end_done_at", "after_end_claimed_until"),
	written("consolidation_run", "varchar(40)", "closing_estado_found"),
	written("consolidation_run", "boolean", "rows_removed"),
)

// resultTables are the tables the service inserts rows into: any column of theirs
// it does not know must accept a row without it (nullable, or a default).
var resultTables = []string{"nomina_empleado_consolidado", "nomina_concepto_empleado_consolidado", "nomina_metrica_consolidacion"}

// Querier is what Validate reads the catalog with (a pool, a connection, a tx).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type dbColumn struct {
	Table, Column, DataType  string
	Length, Precision, Scale *int32
	Nullable, HasDefault     bool
}

// Validate checks that every column in RequiredColumns exists with a compatible
// type, and that the result tables hold no column the service's inserts would leave
// NULL against a NOT NULL without a default. Each problem names its table and
// column (a *MismatchError). Migrate runs it last; the coordinator runs it before
// serving.
func Validate(ctx context.Context, q Querier) error {
	rows, err := q.Query(ctx, `
		SELECT table_name::text, column_name::text, data_type::text, character_maximum_length::int4,
		       numeric_precision::int4, numeric_scale::int4, is_nullable = 'YES',
		       column_default IS NOT NULL OR is_identity = 'YES' OR is_generated <> 'NEVER'
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND (table_name LIKE 'nomina\_%' OR table_name = 'consolidation_run')`)
	if err != nil {
		return fmt.Errorf("reading the columns of the payroll tables: %w", err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dbColumn])
	if err != nil {
		return fmt.Errorf("reading the columns of the payroll tables: %w", err)
	}
	byName := make(map[[2]string]dbColumn, len(cols))
	for _, c := range cols {
		byName[[2]string{c.Table, c.Column}] = c
	}
	var problems []error
	for _, want := range RequiredColumns {
		got, ok := byName[[2]string{want.Table, want.Column}]
		if !ok {
			problems = append(problems, fmt.Errorf("%s.%s is missing (want %s)", want.Table, want.Column, want.Type))
			continue
		}
		if !compatible(want, got) {
			problems = append(problems, fmt.Errorf("%s.%s is %s, want %s", want.Table, want.Column, got.typeName(), want.Type))
		}
	}
	for _, c := range cols {
		if !slices.Contains(resultTables, c.Table) || c.Nullable || c.HasDefault {
			continue
		}
		if !slices.ContainsFunc(RequiredColumns, func(r RequiredColumn) bool { return r.Table == c.Table && r.Column == c.Column }) {
			problems = append(problems, fmt.Errorf("%s.%s is NOT NULL without a default, and the service does not write it", c.Table, c.Column))
		}
	}
	if len(problems) > 0 {
		return &MismatchError{Problems: problems}
	}
	return nil
}

// MismatchError is Validate's answer for a database it could read whose payroll
// tables do not fit the service: each problem names a table and a column. Any other
// error of Validate's is a failure to read the catalog.
type MismatchError struct {
	Problems []error
}

func (e *MismatchError) Error() string {
	return "the payroll tables do not have the columns the service needs: " + errors.Join(e.Problems...).Error()
}

var integerWidths = []string{"smallint", "integer", "bigint"}

func compatible(want RequiredColumn, got dbColumn) bool {
	name := got.typeName()
	switch {
	case strings.HasPrefix(want.Type, "varchar("):
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(want.Type, "varchar("), ")"))
		return got.DataType == "text" || got.DataType == "character varying" && (got.Length == nil || int(*got.Length) >= n)
	case !want.Written && slices.Contains(integerWidths, want.Type):
		return slices.Contains(integerWidths, name)
	}
	return name == want.Type
}

// typeName spells the column's type the way RequiredColumn.Type does.
func (c dbColumn) typeName() string {
	switch c.DataType {
	case "character varying":
		if c.Length != nil {
			return fmt.Sprintf("varchar(%d)", *c.Length)
		}
		return "varchar"
	case "numeric":
		if c.Precision != nil && c.Scale != nil {
			return fmt.Sprintf("numeric(%d,%d)", *c.Precision, *c.Scale)
		}
	case "timestamp with time zone":
		return "timestamptz"
	}
	return c.DataType
}
