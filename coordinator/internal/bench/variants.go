package bench

// The floor under schema variants (-variants): each result-table constraint
// removed, and the old Celery design's extra indexes added (docs/benchmarks.md).

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// variant is a schema change whose cost on the write floor is measured: SQL to
// apply and undo, or indexes of the result tables to drop for the measurement and
// build again after it (dropAll: every index that does not back a constraint).
type variant struct {
	name        string
	apply, undo string
	drop        []string
	dropAll     bool
}

// djangoVariants are what a DBA could drop of the payroll application's indexes
// on the two result tables (testdata/django: the old Celery design's "Índices", plus the index
// Django makes for each foreign key).
var djangoVariants = []variant{
	{name: "without the 4 seed indexes that repeat a UNIQUE constraint or its first column",
		drop: []string{"idx_consolidado_cierre_rut", "idx_consolidado_cierre", "idx_concepto_cons_emp_cod", "idx_concepto_cons_empleado"}},
	{name: "without the 6 seed indexes on booleans, tipo_concepto and fuente_dato",
		drop: []string{"idx_consolidado_ingreso", "idx_consolidado_finiquito", "idx_consolidado_ausentismo",
			"idx_consolidado_estados", "idx_concepto_cons_tipo", "idx_concepto_cons_fuente"}},
	{name: "without every index that backs no constraint (the contract's minimum)", dropAll: true},
}

// indexDefs returns the definitions of the named indexes of the result tables, or
// of all of them that back no constraint.
func indexDefs(ctx context.Context, pool *pgxpool.Pool, v variant) ([]string, []string, error) {
	rows, err := pool.Query(ctx, `
		SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema()
		  AND i.tablename IN ('nomina_empleado_consolidado', 'nomina_concepto_empleado_consolidado')
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
		  AND ($1 OR i.indexname = ANY($2))
		ORDER BY 1`, v.dropAll, v.drop)
	if err != nil {
		return nil, nil, err
	}
	var names, defs []string
	var name, def string
	_, err = pgx.ForEachRow(rows, []any{&name, &def}, func() error {
		names, defs = append(names, name), append(defs, def)
		return nil
	})
	if err == nil && !v.dropAll && len(names) != len(v.drop) {
		err = fmt.Errorf("found %d of the %d indexes %v", len(names), len(v.drop), v.drop)
	}
	return names, defs, err
}

// applyVariant changes the schema and returns the SQL that undoes the change.
func applyVariant(ctx context.Context, pool *pgxpool.Pool, v variant) (string, error) {
	if v.apply != "" {
		_, err := pool.Exec(ctx, v.apply)
		return v.undo, err
	}
	names, defs, err := indexDefs(ctx, pool, v)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if _, err := pool.Exec(ctx, "DROP INDEX "+pgx.Identifier{n}.Sanitize()); err != nil {
			return strings.Join(defs, "; "), err
		}
	}
	return strings.Join(defs, "; "), nil
}

var schemaVariants = []variant{
	{name: "without FK concept → employee",
		apply: "ALTER TABLE nomina_concepto_empleado_consolidado DROP CONSTRAINT nomina_concepto_empleado_consolidado_empleado_fk",
		undo:  "ALTER TABLE nomina_concepto_empleado_consolidado ADD CONSTRAINT nomina_concepto_empleado_consolidado_empleado_fk FOREIGN KEY (empleado_consolidado_id) REFERENCES nomina_empleado_consolidado (id) ON DELETE CASCADE"},
	{name: "without UNIQUE (empleado_consolidado_id, codigo_concepto)",
		apply: "ALTER TABLE nomina_concepto_empleado_consolidado DROP CONSTRAINT nomina_concepto_empleado_consolidado_empleado_codigo_key",
		undo:  "ALTER TABLE nomina_concepto_empleado_consolidado ADD CONSTRAINT nomina_concepto_empleado_consolidado_empleado_codigo_key UNIQUE (empleado_consolidado_id, codigo_concepto)"},
	{name: "with the old Celery design's index on concepts (codigo_concepto)",
		apply: "CREATE INDEX bench_concepto_codigo_idx ON nomina_concepto_empleado_consolidado (codigo_concepto)",
		undo:  "DROP INDEX bench_concepto_codigo_idx"},
	{name: "with the old Celery design's indexes on employees (rut) and (cierre_id, nombre_completo)",
		apply: "CREATE INDEX bench_consolidado_rut_idx ON nomina_empleado_consolidado (rut); CREATE INDEX bench_consolidado_nombre_idx ON nomina_empleado_consolidado (cierre_id, nombre_completo)",
		undo:  "DROP INDEX bench_consolidado_rut_idx; DROP INDEX bench_consolidado_nombre_idx"},
}

func variants(ctx context.Context, pool *pgxpool.Pool, out io.Writer, last Result, list []variant) error {
	var closing int64
	if err := pool.QueryRow(ctx, "SELECT max(cierre_id) FROM nomina_empleado_consolidado").Scan(&closing); err != nil {
		return err
	}
	// Each figure is the best of two, and the contract schema is measured before
	// and after the variants: the floor is noisy on a shared 2-core machine.
	best := func() (time.Duration, int64, error) {
		var b time.Duration
		var rows int64
		for range 2 {
			d, n, _, err := floor(ctx, pool, closing)
			if err != nil {
				return 0, 0, err
			}
			if b == 0 || d < b {
				b = d
			}
			rows = n
		}
		return b, rows, nil
	}
	base, rows, err := best()
	if err != nil {
		return err
	}
	type row struct {
		name string
		d    time.Duration
	}
	var measured []row
	for _, v := range list {
		undo, err := applyVariant(ctx, pool, v)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		d, _, err := best()
		if _, uerr := pool.Exec(ctx, undo); uerr != nil && err == nil {
			err = uerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		measured = append(measured, row{v.name, d})
	}
	if again, _, err := best(); err == nil && again < base {
		base = again
	}
	fmt.Fprintf(out, "\nfloor of the %d-employee closing (%d rows) on the %s schema under variants (best of two):\n\n",
		last.Employees, rows, last.Schema)
	fmt.Fprintf(out, "| schema | floor | µs per row | vs as deployed |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(out, "| %s schema, as deployed | %s | %.1f | — |\n", last.Schema, base.Round(time.Millisecond), us(base, rows))
	for _, m := range measured {
		fmt.Fprintf(out, "| %s | %s | %.1f | %+.0f%% |\n", m.name, m.d.Round(time.Millisecond), us(m.d, rows),
			100*(m.d.Seconds()-base.Seconds())/base.Seconds())
	}
	return nil
}
