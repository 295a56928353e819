package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// resultTables are the tables the service writes.
var resultTables = []string{"nomina_empleado_consolidado", "nomina_concepto_empleado_consolidado", "nomina_metrica_consolidacion"}

// asDjangoLeavesThem alters the result tables the way Django creates them (docs/database.md): no column defaults, foreign keys DEFERRABLE INITIALLY DEFERRED with
// no ON DELETE action, and constraint names the service does not know. The names
// are looked up in pg_constraint, not assumed.
func asDjangoLeavesThem(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	var ddl []string
	rows, err := pool.Query(ctx, `
		SELECT format('ALTER TABLE %I ALTER COLUMN %I DROP DEFAULT', table_name, column_name)
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = ANY($1) AND column_default IS NOT NULL`, resultTables)
	require.NoError(t, err)
	drops, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, drops, "the service's migration has defaults to drop")
	ddl = append(ddl, drops...)

	rows, err = pool.Query(ctx, `
		SELECT c.conrelid::regclass::text, c.conname, c.contype = 'f', pg_get_constraintdef(c.oid)
		FROM pg_constraint c
		WHERE c.conrelid = ANY(SELECT t::regclass FROM unnest($1::text[]) t) AND c.contype IN ('f', 'u')
		ORDER BY c.conname`, resultTables)
	require.NoError(t, err)
	type constraint struct {
		Table, Name string
		Foreign     bool
		Def         string
	}
	cons, err := pgx.CollectRows(rows, pgx.RowToStructByPos[constraint])
	require.NoError(t, err)
	foreign := 0
	for i, c := range cons {
		name := pgx.Identifier{"dj_" + c.Table[:min(len(c.Table), 20)] + "_" + string(rune('a'+i)) + "_fk_uniq"}.Sanitize()
		if !c.Foreign {
			ddl = append(ddl, "ALTER TABLE "+c.Table+" RENAME CONSTRAINT "+pgx.Identifier{c.Name}.Sanitize()+" TO "+name)
			continue
		}
		foreign++
		def := strings.Replace(c.Def, " ON DELETE CASCADE", "", 1)
		require.NotContains(t, def, "ON DELETE")
		ddl = append(ddl,
			"ALTER TABLE "+c.Table+" DROP CONSTRAINT "+pgx.Identifier{c.Name}.Sanitize(),
			"ALTER TABLE "+c.Table+" ADD CONSTRAINT "+name+" "+def+" DEFERRABLE INITIALLY DEFERRED")
	}
	require.GreaterOrEqual(t, foreign, 3, "the result tables' foreign keys")
	for _, q := range ddl {
		_, err := pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}

	// What the tests below rely on: every foreign key deferred and without action,
	// and no default left.
	require.Zero(t, countRows(t, pool, `
		SELECT count(*) FROM pg_constraint
		WHERE conrelid = ANY(SELECT t::regclass FROM unnest($1::text[]) t) AND contype = 'f'
		  AND NOT (condeferrable AND condeferred AND confdeltype = 'a')`, resultTables))
	require.Zero(t, countRows(t, pool, `
		SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = ANY($1) AND column_default IS NOT NULL`, resultTables))
}

// orphanConcepts counts concept rows whose employee row is gone.
func orphanConcepts(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	return countRows(t, pool, `SELECT count(*) FROM nomina_concepto_empleado_consolidado c
		WHERE NOT EXISTS (SELECT 1 FROM nomina_empleado_consolidado e WHERE e.id = c.empleado_consolidado_id)`)
}

func TestOnTablesAsDjangoCreatesThem(t *testing.T) {
	t.Parallel()

	t.Run("TheEmulationCascadesNothing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		asDjangoLeavesThem(t, pool)
		writeWithoutRun(t, pool, 8, 201, 201)
		// Deleting a parent alone is refused at commit: the key is deferred, not cascading.
		_, err := pool.Exec(t.Context(), "DELETE FROM nomina_empleado_consolidado WHERE cierre_id = 8")
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "got %v", err)
		require.Equal(t, "23503", pgErr.Code)
	})
	t.Run("CommitChunkWritesEveryColumn", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		asDjangoLeavesThem(t, pool)
		runID := newRun(t, pool, twoChunks)
		require.Equal(t, chunk0Sum, dispatchAndCommit(t, pool, runID, 0))
		require.Equal(t, chunk1Sum, dispatchAndCommit(t, pool, runID, 1))
		requireRowsOfRun(t, pool, runID, 3, 9)
		require.Equal(t, 3, countRows(t, pool, `SELECT count(*) FROM nomina_empleado_consolidado
			WHERE consolidation_run_id = $1 AND fecha_consolidacion > now() - interval '1 hour'
			  AND es_ingreso IS NOT NULL AND es_finiquito IS NOT NULL AND tiene_ausentismo IS NOT NULL
			  AND discrepancias_resueltas IS NOT NULL`, runID))
		requireWrittenRowsAreTheHandComputedOnes(t, pool)
	})
	t.Run("FinishRunWritesEveryMetricsColumn", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		asDjangoLeavesThem(t, pool)
		runID := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, runID, 0)
		finish(t, pool, runID, domain.EstadoParcial, false)
		m, err := store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, store.AlgorithmVersion(), m.VersionAlgoritmo)
		require.Equal(t, 1, countRows(t, pool, `SELECT count(*) FROM nomina_metrica_consolidacion
			WHERE cierre_id = 7 AND fecha_procesamiento > now() - interval '1 hour'`))
		// And replacing it (ON CONFLICT by column, not by constraint name) works too.
		second := newRun(t, pool, twoChunks)
		finish(t, pool, second, domain.EstadoCancelada, true)
		m, err = store.GetMetrics(t.Context(), pool, 7)
		require.NoError(t, err)
		require.Equal(t, second, m.RunID)
	})
	t.Run("FinishRunRemovesTheRunsRowsChildrenFirst", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		asDjangoLeavesThem(t, pool)
		writeWithoutRun(t, pool, 8, 201, 201)
		runID := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, runID, 0)
		dispatchAndCommit(t, pool, runID, 1)
		finish(t, pool, runID, domain.EstadoError, true)
		requireRowsOfRun(t, pool, runID, 0, 0)
		require.Zero(t, orphanConcepts(t, pool))
		require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = 8"))
		require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM nomina_concepto_empleado_consolidado"))
		require.Equal(t, domain.EstadoError, estadoOf(t, pool, 7))
	})
	t.Run("AFullRunsEndRemovesTheRowsItDidNotWriteChildrenFirst", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		asDjangoLeavesThem(t, pool)
		requireEndRemovesOtherRunsRowsOfTheClosingOnly(t, pool)
	})
}
