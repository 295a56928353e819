package schema_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/schema"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	// A database with nothing in it, not the pre-migrated template.
	pool := pgtest.OpenPool(t, pgtest.NewDatabaseWith(t, pgtest.EmptySchema))

	all, err := schema.Migrations()
	require.NoError(t, err)
	require.NotEmpty(t, all)

	applied, err := schema.Migrate(ctx, logger, pool)
	require.NoError(t, err)
	require.Equal(t, len(all), applied)

	applied, err = schema.Migrate(ctx, logger, pool)
	require.NoError(t, err)
	require.Zero(t, applied, "second run applies nothing")

	for _, table := range []string{
		"nomina_cierrenomina", "nomina_empleado_cierre", "nomina_registro_concepto_empleado",
		"nomina_empleado_cierre_novedades", "nomina_registro_concepto_empleado_novedades",
		"nomina_movimiento_alta_baja", "nomina_movimiento_ausentismo", "nomina_movimiento_vacaciones",
		"nomina_discrepanciacierre", "nomina_analista_ingreso", "nomina_analista_finiquito",
		"nomina_analista_incidencia", "nomina_empleado_consolidado", "nomina_concepto_empleado_consolidado",
		"nomina_metrica_consolidacion", "consolidation_run", "consolidation_chunk", "consolidation_chunk_attempt",
	} {
		var exists bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
		require.True(t, exists, table)
	}
}

func TestMigrationsOnExistingPayrollTables(t *testing.T) {
	t.Parallel()
	// The payroll application owns the source tables in production: our migrations
	// must accept them already there, and explicit ids on insert.
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(ctx, "DELETE FROM schema_migrations")
	require.NoError(t, err)
	_, err = schema.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), pool)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES (900, 1, 2026, 'x')")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO nomina_cierrenomina (mes, anno, estado) VALUES (13, 2026, 'x')")
	require.Error(t, err, "mes is 1..12")
}

// TestSavedChunksCompressWithLz4 checks that migration 018 sets lz4 on the saved
// arrays when the server has it (the statement is built at run time, so a server
// without SET COMPRESSION, before PostgreSQL 14, still applies the migration), and
// leaves the default when it does not.
func TestSavedChunksCompressWithLz4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, lz4Err := tx.Exec(ctx, "SET LOCAL default_toast_compression = lz4")
	require.NoError(t, tx.Rollback(ctx))
	want := "l"
	if lz4Err != nil {
		want = "" // built without lz4: the column keeps the default
	}
	rows, err := pool.Query(ctx, `SELECT attname, attcompression::text FROM pg_attribute
		WHERE attrelid = 'consolidation_previous_chunk'::regclass AND attname IN ('employees', 'concepts')
		ORDER BY attname`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Compression string }])
	require.NoError(t, err)
	require.Equal(t, []struct{ Name, Compression string }{{"concepts", want}, {"employees", want}}, got)
}
