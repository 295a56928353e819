package schema_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/schema"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// schemaSnapshot lists every column, index and constraint of the public schema, one
// line each, sorted: two equal snapshots are the same schema.
func schemaSnapshot(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name, data_type,
		              is_nullable, coalesce(column_default, '-'))
		FROM information_schema.columns WHERE table_schema = 'public'
		UNION ALL
		SELECT format('index %s valid=%s %s', c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid))
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relnamespace = 'public'::regnamespace
		UNION ALL
		SELECT format('constraint %s.%s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace
		ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func TestMigrateOnDjangoDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.OpenPool(t, pgtest.NewDatabaseWith(t, pgtest.DjangoOnlySchema))
	django := schemaSnapshot(t, pool)
	all, err := schema.Migrations()
	require.NoError(t, err)

	applied, err := schema.Migrate(ctx, discard(), pool)
	require.NoError(t, err)
	require.Equal(t, len(all), applied)
	first := schemaSnapshot(t, pool)

	t.Run("LeavesEveryApplicationColumnIndexAndConstraintAsItWas", func(t *testing.T) {
		for _, line := range django {
			require.Contains(t, first, line)
		}
	})
	t.Run("AddsItsColumnsNullable", func(t *testing.T) {
		for _, table := range []string{"nomina_empleado_consolidado", "nomina_metrica_consolidacion"} {
			require.Contains(t, first, "column "+table+".consolidation_run_id bigint null=YES default=-")
		}
	})
	t.Run("BuildsItsIndexesValidAndNoneOfTheOwnSchemas", func(t *testing.T) {
		for _, index := range []string{
			"nomina_empleado_cierre_novedades_cierre_rut_canonical_ids_idx", "nomina_movimiento_alta_baja_rut_canonical_idx",
			"nomina_movimiento_ausentismo_rut_canonical_idx", "nomina_empleado_cierre_cierre_rut_canonical_ids_idx",
		} {
			require.True(t, slicesHasPrefix(first, "index "+index+" valid=t "), index)
		}
		// 007's indexes on the libro and the novedades, replaced by 020's.
		require.False(t, slicesHasPrefix(first, "index nomina_empleado_cierre_cierre_rut_canonical_idx "))
		require.False(t, slicesHasPrefix(first, "index nomina_empleado_cierre_novedades_cierre_rut_canonical_idx "))
		// 001's indexes go only with the tables it creates; Django's tables have theirs.
		require.False(t, slicesHasPrefix(first, "index nomina_empleado_cierre_cierre_id_idx "))
		require.False(t, slicesHasPrefix(first, "index nomina_discrepanciacierre_cierre_id_idx "))
	})
	t.Run("SecondRunAppliesNothingAndChangesNothing", func(t *testing.T) {
		applied, err := schema.Migrate(ctx, discard(), pool)
		require.NoError(t, err)
		require.Zero(t, applied)
		require.Equal(t, first, schemaSnapshot(t, pool))
		var out bytes.Buffer
		require.NoError(t, schema.PrintSQL(ctx, pool, &out))
		require.Contains(t, out.String(), "None: the schema is up to date")
	})
}

func slicesHasPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestPrintSQLShowsTheStatementsAndWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.OpenPool(t, pgtest.NewDatabaseWith(t, pgtest.DjangoOnlySchema))
	before := schemaSnapshot(t, pool)

	var out bytes.Buffer
	require.NoError(t, schema.PrintSQL(ctx, pool, &out))
	sql := out.String()
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS schema_migrations",
		"ALTER TABLE nomina_empleado_consolidado ADD COLUMN IF NOT EXISTS consolidation_run_id bigint NULL;",
		"ALTER TABLE nomina_metrica_consolidacion ADD COLUMN IF NOT EXISTS consolidation_run_id bigint NULL;",
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS nomina_movimiento_alta_baja_rut_canonical_idx\n    ON nomina_movimiento_alta_baja (nomina_rut_canonical(rut));",
		"CREATE TABLE IF NOT EXISTS consolidation_run",
		"INSERT INTO schema_migrations (version, name) VALUES (7, 'application_indexes') ON CONFLICT DO NOTHING;",
	} {
		require.Contains(t, sql, want)
	}
	// 020 drops 007's libro and novedades indexes by name; the rebuild of an
	// invalid index drops it by its quoted identifier.
	require.Contains(t, sql, "DROP INDEX CONCURRENTLY IF EXISTS nomina_empleado_cierre_cierre_rut_canonical_idx;")
	require.NotContains(t, sql, `DROP INDEX CONCURRENTLY IF EXISTS "`, "no index is invalid")
	require.Equal(t, before, schemaSnapshot(t, pool), "printing changed the schema")
}

func TestMigrateRebuildsAnInvalidIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.OpenPool(t, pgtest.NewDjangoDatabase(t))
	const index = "nomina_movimiento_alta_baja_rut_canonical_idx"
	// What a CREATE INDEX CONCURRENTLY that failed half-way leaves behind, and a
	// migration not recorded as applied.
	var oldOID uint32
	require.NoError(t, pool.QueryRow(ctx, "SELECT $1::regclass::oid", index).Scan(&oldOID))
	_, err := pool.Exec(ctx, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1", oldOID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "DELETE FROM schema_migrations WHERE version = 7")
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, schema.PrintSQL(ctx, pool, &out))
	require.Contains(t, out.String(), `DROP INDEX CONCURRENTLY IF EXISTS "`+index+`";`)

	applied, err := schema.Migrate(ctx, discard(), pool)
	require.NoError(t, err)
	require.Equal(t, 1, applied)
	var valid bool
	var newOID uint32
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT indisvalid, indexrelid::oid FROM pg_index WHERE indexrelid = $1::regclass", index).Scan(&valid, &newOID))
	require.True(t, valid)
	require.NotEqual(t, oldOID, newOID, "the invalid index was kept, not rebuilt")
}

func TestValidateNamesTheTableAndColumn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, alter, want string
	}{
		{"MissingColumn", "ALTER TABLE nomina_empleado_cierre DROP COLUMN centro_costo",
			"nomina_empleado_cierre.centro_costo is missing"},
		{"WrongNumericType", "ALTER TABLE nomina_concepto_empleado_consolidado ALTER COLUMN valor TYPE numeric(14,4)",
			"nomina_concepto_empleado_consolidado.valor is numeric(14,4), want numeric(12,2)"},
		{"WrittenIdNotBigint", "ALTER TABLE nomina_empleado_consolidado ALTER COLUMN consolidation_run_id TYPE integer",
			"nomina_empleado_consolidado.consolidation_run_id is integer, want bigint"},
		{"ShorterVarchar", "ALTER TABLE nomina_empleado_cierre_novedades ALTER COLUMN rut TYPE varchar(9)",
			"nomina_empleado_cierre_novedades.rut is varchar(9), want varchar(15)"},
		{"RunAuditColumnMissing", "ALTER TABLE consolidation_run DROP COLUMN cancelled_by",
			"consolidation_run.cancelled_by is missing (want text)"},
		{"UnknownNotNullResultColumn", "ALTER TABLE nomina_metrica_consolidacion ADD COLUMN revisado_por varchar(50) NOT NULL",
			"nomina_metrica_consolidacion.revisado_por is NOT NULL without a default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := pgtest.OpenPool(t, pgtest.NewDjangoDatabase(t))
			require.NoError(t, schema.Validate(ctx, pool))
			_, err := pool.Exec(ctx, tc.alter)
			require.NoError(t, err)
			err = schema.Validate(ctx, pool)
			var mismatch *schema.MismatchError
			require.ErrorAs(t, err, &mismatch)
			require.ErrorContains(t, err, tc.want)
			_, err = schema.Migrate(ctx, discard(), pool)
			require.ErrorContains(t, err, tc.want, "migrate ends with the same check")
		})
	}
}

func TestRuntimeRoleHasExactlyTheGrants(t *testing.T) {
	t.Parallel()
	for _, s := range []pgtest.Schema{pgtest.DjangoSchema, pgtest.OwnSchema} {
		t.Run(s.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := pgtest.NewDatabaseWith(t, s)
			admin := pgtest.OpenPool(t, url)
			_, err := admin.Exec(ctx, closingFixture(s))
			require.NoError(t, err)
			role := pgtest.OpenPool(t, pgtest.NewRuntimeRole(t, url))

			allowed := []string{
				"SELECT count(*) FROM nomina_empleado_cierre JOIN nomina_registro_concepto_empleado r ON r.empleado_id = nomina_empleado_cierre.id",
				"SELECT count(*) FROM nomina_empleado_cierre_novedades, nomina_registro_concepto_empleado_novedades, nomina_movimiento_alta_baja, nomina_movimiento_ausentismo, nomina_discrepanciacierre",
				"SELECT mes, anno, estado FROM nomina_cierrenomina WHERE id = 1 FOR UPDATE",
				"UPDATE nomina_cierrenomina SET estado = 'consolidando_datos' WHERE id = 1 AND estado = 'datos_listos'",
				`INSERT INTO nomina_empleado_consolidado (id, cierre_id, empleado_origen_id, rut, nombre_completo, cargo,
					centro_costo, es_ingreso, es_finiquito, tiene_ausentismo, total_haberes, total_descuentos, liquido_pagar,
					fuentes_utilizadas, reglas_aplicadas, discrepancias_resueltas, fecha_consolidacion, consolidation_run_id)
				 SELECT nextval(pg_get_serial_sequence('nomina_empleado_consolidado', 'id')), 1, 10, '11111111-1', 'Ana',
					'x', 'y', false, false, false, 1, 0, 1, '["libro"]', '[]', 0, now(), NULL`,
				`INSERT INTO nomina_concepto_empleado_consolidado (empleado_consolidado_id, codigo_concepto, nombre_concepto,
					valor, tipo_concepto, fuente_dato) SELECT id, 'C1', 'n', 1, 'haber', 'libro' FROM nomina_empleado_consolidado`,
				`INSERT INTO nomina_metrica_consolidacion (cierre_id, total_empleados, chunks_procesados, chunks_exitosos,
					registros_creados, tiempo_total, chunk_size_utilizado, version_algoritmo, fecha_procesamiento)
				 VALUES (1, 1, 1, 1, 1, 0.5, 50, 'go-1', now())`,
				"DELETE FROM nomina_metrica_consolidacion WHERE cierre_id = 1",
				"DELETE FROM nomina_concepto_empleado_consolidado",
				"DELETE FROM nomina_empleado_consolidado WHERE cierre_id = 1",
				`INSERT INTO consolidation_run (cierre_id, mode, policy, chunk_size, previous_estado, estado, deadline)
				 VALUES (1, 'full', 'seed', 50, 'datos_listos', 'consolidando_datos', now())`,
				"UPDATE consolidation_run SET finished_at = now()",
				`INSERT INTO consolidation_previous_result (run_id, employee_id, employee, concepts)
				 SELECT id, 1, '{}', '[]' FROM consolidation_run`,
				"SELECT count(*) FROM consolidation_previous_result",
				"DELETE FROM consolidation_previous_result",
				`INSERT INTO consolidation_previous_chunk (run_id, chunk_index, employees, concepts)
				 SELECT id, 0, '[]', '[]' FROM consolidation_run`,
				"SELECT count(*) FROM consolidation_previous_chunk",
				"DELETE FROM consolidation_previous_chunk",
				"DELETE FROM consolidation_run",
				"SELECT nomina_rut_canonical('11.111.111-1')",
			}
			for _, sql := range allowed {
				_, err := role.Exec(ctx, sql)
				require.NoError(t, err, sql)
			}
			refused := []string{
				"UPDATE nomina_cierrenomina SET mes = 2 WHERE id = 1",
				"UPDATE nomina_empleado_cierre SET nombre = 'x'",
				"INSERT INTO nomina_movimiento_alta_baja (rut, tipo_movimiento, fecha_movimiento) VALUES ('1-9', 'ingreso', now())",
				"DELETE FROM nomina_empleado_cierre",
				"UPDATE nomina_empleado_consolidado SET nombre_completo = 'x'",
				"TRUNCATE nomina_empleado_consolidado",
				"DROP TABLE nomina_concepto_empleado_consolidado",
				"DROP TABLE consolidation_chunk_attempt",
				"ALTER TABLE nomina_cierrenomina ADD COLUMN x int",
				"CREATE INDEX ON nomina_empleado_cierre (rut)",
				"DROP FUNCTION nomina_rut_canonical(text)",
				"CREATE TABLE intruder (id int)",
				// Tables the service never reads, and rights it never uses.
				"SELECT count(*) FROM nomina_movimiento_vacaciones",
				"SELECT count(*) FROM nomina_analista_ingreso",
				"SELECT count(*) FROM nomina_analista_finiquito",
				"SELECT count(*) FROM nomina_analista_incidencia",
				"TRUNCATE consolidation_run",
				"TRUNCATE consolidation_previous_result",
				"TRUNCATE consolidation_previous_chunk",
			}
			for _, sql := range refused {
				_, err := role.Exec(ctx, sql)
				var pgErr *pgconn.PgError
				require.ErrorAs(t, err, &pgErr, sql)
				require.Equal(t, "42501", pgErr.Code, "%s: want insufficient_privilege, got %v", sql, err)
			}
		})
	}
}

// closingFixture is closing 1 with one libro employee (id 10) and a concept line; a
// Django-created closing table also wants the columns the service does not know.
func closingFixture(s pgtest.Schema) string {
	closing := "INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES (1, 3, 2026, 'datos_listos');"
	if s != pgtest.OwnSchema {
		closing = `INSERT INTO nomina_cierrenomina (id, mes, anno, estado, cliente, fecha_creacion)
			VALUES (1, 3, 2026, 'datos_listos', 'acme', now());`
	}
	return closing + `
		INSERT INTO nomina_empleado_cierre (id, cierre_id, rut, nombre, cargo, centro_costo, sueldo_base)
			VALUES (10, 1, '11.111.111-1', 'Ana', 'x', 'y', 1000);
		INSERT INTO nomina_registro_concepto_empleado (empleado_id, codigo_concepto, nombre_concepto, valor, tipo_concepto)
			VALUES (10, 'C1', 'Sueldo', 1000, 'haber');`
}

func TestDjangoReadsResultsAndDeletesAClosingTheServiceWorkedOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDjangoDatabase(t)
	pool := pgtest.OpenPool(t, url)
	_, err := pool.Exec(ctx, closingFixture(pgtest.DjangoSchema)+`
		INSERT INTO consolidation_run (id, cierre_id, mode, policy, chunk_size, previous_estado, estado, deadline, finished_at)
			VALUES (1, 1, 'full', 'seed', 50, 'datos_listos', 'consolidacion_parcial', now(), now()),
			       (2, 1, 'retry_failed', 'seed', 50, 'consolidacion_parcial', 'datos_consolidados', now(), now());
		UPDATE consolidation_run SET retry_of_run_id = 1 WHERE id = 2;
		INSERT INTO consolidation_chunk (run_id, chunk_index, first_employee_id, last_employee_id, employees)
			VALUES (1, 0, 10, 10, 1), (2, 0, 10, 10, 1);
		INSERT INTO consolidation_chunk_attempt (run_id, chunk_index, attempt, attempt_token) VALUES (1, 0, 1, 7), (2, 0, 1, 8);
		INSERT INTO nomina_empleado_consolidado (id, cierre_id, empleado_origen_id, rut, nombre_completo, cargo,
			centro_costo, es_ingreso, es_finiquito, tiene_ausentismo, total_haberes, total_descuentos, liquido_pagar,
			fuentes_utilizadas, reglas_aplicadas, discrepancias_resueltas, fecha_consolidacion, consolidation_run_id)
			VALUES (5, 1, 10, '11111111-1', 'Ana', 'x', 'y', false, false, false, 1000, 0, 1000,
			        '["libro", "novedades"]', '["R2"]', 0, now(), 2);
		INSERT INTO nomina_concepto_empleado_consolidado (empleado_consolidado_id, codigo_concepto, nombre_concepto,
			valor, tipo_concepto, fuente_dato) VALUES (5, 'C1', 'Sueldo', 1000, 'haber', 'libro');
		INSERT INTO nomina_metrica_consolidacion (cierre_id, total_empleados, chunks_procesados, chunks_exitosos,
			registros_creados, tiempo_total, chunk_size_utilizado, version_algoritmo, fecha_procesamiento, consolidation_run_id)
			VALUES (1, 1, 1, 1, 2, 0.5, 50, 'go-1', now(), 2);`)
	require.NoError(t, err)

	django, err := localdb.Django()
	require.NoError(t, err)
	out, err := django.Manage(ctx, url, "shell", "-c", `
from nomina.models import CierreNomina
c = CierreNomina.objects.get(id=1)
e = c.empleadoconsolidado_set.get()
print("fuentes", type(e.fuentes_utilizadas).__name__, e.fuentes_utilizadas, [x.codigo_concepto for x in e.conceptos.all()])
print("metrica", c.metrica_consolidacion.version_algoritmo)
c.delete()
print("deleted")
`)
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "fuentes list ['libro', 'novedades'] ['C1']")
	require.Contains(t, string(out), "metrica go-1")
	require.Contains(t, string(out), "deleted")

	for _, table := range []string{
		"nomina_cierrenomina", "nomina_empleado_cierre", "nomina_empleado_consolidado",
		"nomina_concepto_empleado_consolidado", "nomina_metrica_consolidacion",
		"consolidation_run", "consolidation_chunk", "consolidation_chunk_attempt",
	} {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		require.Zero(t, n, "%s keeps rows of the deleted closing", table)
	}
}

// TestCheckMigratedSaysWhichCommand: a database none of the migrations was
// applied to, and one missing the last, are each refused by CheckMigrated with
// the command that fixes them; a migrated one passes.
func TestCheckMigratedSaysWhichCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	all, err := schema.Migrations()
	require.NoError(t, err)

	none := pgtest.OpenPool(t, pgtest.NewDatabaseWith(t, pgtest.DjangoOnlySchema))
	err = schema.CheckMigrated(ctx, none)
	var notMigrated *schema.NotMigratedError
	require.ErrorAs(t, err, &notMigrated)
	require.Equal(t, len(all), notMigrated.Pending)
	require.EqualError(t, err, fmt.Sprintf("the database is not migrated (none of the %d migrations is applied): "+
		"run `coordinator migrate` with this DATABASE_URL first (docs/database.md)", len(all)))

	migrated := pgtest.OpenPool(t, pgtest.NewDatabase(t))
	require.NoError(t, schema.CheckMigrated(ctx, migrated))
	last := all[len(all)-1]
	_, err = migrated.Exec(ctx, "DELETE FROM schema_migrations WHERE version = $1", last.Version)
	require.NoError(t, err)
	err = schema.CheckMigrated(ctx, migrated)
	require.ErrorAs(t, err, &notMigrated)
	require.EqualError(t, err, fmt.Sprintf("the database is migrated partly (1 of %d migrations not applied, from %03d_%s): "+
		"run `coordinator migrate` with this DATABASE_URL first (docs/database.md)", len(all), last.Version, last.Name))
}
