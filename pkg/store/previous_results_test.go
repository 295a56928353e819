package store_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

// resultRows is every result row of a closing, employees and concepts, whole
// (every column, ids included) as PostgreSQL spells the row, sorted: two equal
// lists are the same rows.
func resultRows(t *testing.T, pool *pgxpool.Pool, closingID int64) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT 'employee ' || e::text FROM nomina_empleado_consolidado e WHERE e.cierre_id = $1
		UNION ALL
		SELECT 'concept ' || c::text FROM nomina_concepto_empleado_consolidado c
		JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id WHERE e.cierre_id = $1
		ORDER BY 1`, closingID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, out)
	return out
}

// savedRows counts the previous employee rows a run has saved, as this version
// saves them (a row of arrays a chunk) and as versions before it did (a row an
// employee).
func savedRows(t *testing.T, pool *pgxpool.Pool, runID int64) int {
	t.Helper()
	return countRows(t, pool, `SELECT
		(SELECT coalesce(sum(json_array_length(employees)), 0) FROM consolidation_previous_chunk WHERE run_id = $1)
		+ (SELECT count(*) FROM consolidation_previous_result WHERE run_id = $1)`, runID)
}

// keptRows counts the unchanged employee rows a run's chunk commits kept and
// re-stamped.
func keptRows(t *testing.T, pool *pgxpool.Pool, runID int64) int {
	t.Helper()
	return countRows(t, pool, `SELECT coalesce(sum(cardinality(kept_ids)), 0) FROM consolidation_previous_chunk
		WHERE run_id = $1`, runID)
}

// oneRowPerEmployee requires closing 7 to have exactly one employee row per libro
// employee, each with its concept rows, as a reader sees it.
func oneRowPerEmployee(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	require.Equal(t, 3, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = 7"))
	require.Equal(t, 9, countRows(t, pool, `SELECT count(*) FROM nomina_concepto_empleado_consolidado c
		JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id WHERE e.cierre_id = 7`))
}

// consolidatedTwice is closing 7 fully consolidated by a first run (datos_consolidados),
// beside closing 8's row of the same person written by no run, and a second full
// run of closing 7 started; it returns both runs.
func consolidatedTwice(t *testing.T, pool *pgxpool.Pool) (first, second int64) {
	t.Helper()
	writeWithoutRun(t, pool, 8, 201, 201)
	first = newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, first, 0)
	dispatchAndCommit(t, pool, first, 1)
	finish(t, pool, first, domain.EstadoConsolidados, false)
	require.Zero(t, savedRows(t, pool, first), "a first run has nothing to save")
	staleRows(t, pool, 7)
	return first, newRun(t, pool, twoChunks)
}

// staleRows makes every row of a closing differ from what the rules compute (as
// rows written before the libro changed), so the next run replaces them all.
func staleRows(t *testing.T, pool *pgxpool.Pool, closingID int64) {
	t.Helper()
	_, err := pool.Exec(t.Context(), "UPDATE nomina_empleado_consolidado SET cargo = cargo || ' (antes)' WHERE cierre_id = $1", closingID)
	require.NoError(t, err)
}

// replacedBySecondRun is consolidatedTwice with both chunks of the second run
// committed: closing 7's rows before that run, and the run.
func replacedBySecondRun(t *testing.T) (pool *pgxpool.Pool, second int64, before []string) {
	t.Helper()
	pool = loadClosing(t)
	_, second = consolidatedTwice(t, pool)
	before = resultRows(t, pool, 7)
	dispatchAndCommit(t, pool, second, 0)
	dispatchAndCommit(t, pool, second, 1)
	return pool, second, before
}

func TestPreviousResults(t *testing.T) {
	t.Parallel()

	t.Run("AChunkReplacesItsEmployeesRowsOnly", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		first, second := consolidatedTwice(t, pool)
		closing8 := resultRows(t, pool, 8)
		dispatchAndCommit(t, pool, second, 0)
		oneRowPerEmployee(t, pool)
		requireRowsOfRun(t, pool, second, 1, 5)
		requireRowsOfRun(t, pool, first, 2, 4)
		require.Equal(t, 1, savedRows(t, pool, second))
		require.Equal(t, closing8, resultRows(t, pool, 8), "the same person in another closing is not touched")
	})
	for _, end := range []domain.Estado{domain.EstadoCancelada, domain.EstadoTimeout, domain.EstadoError} {
		t.Run("RemovingEndRestoresThemExactly/"+string(end), func(t *testing.T) {
			t.Parallel()
			pool, second, before := replacedBySecondRun(t)
			require.NotEqual(t, before, resultRows(t, pool, 7))
			finish(t, pool, second, end, true)
			require.Equal(t, before, resultRows(t, pool, 7))
			require.Zero(t, savedRows(t, pool, second))
		})
	}
	t.Run("KeepingEndDropsThemAndTheRowsItDidNotWrite", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, second := consolidatedTwice(t, pool)
		closing8 := resultRows(t, pool, 8)
		dispatchAndCommit(t, pool, second, 0) // chunk 1 fails with the run's end
		finish(t, pool, second, domain.EstadoParcial, false)
		requireRowsOfRun(t, pool, second, 1, 5)
		require.Equal(t, 1, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = 7"),
			"the failed chunk's stale rows are gone")
		require.Zero(t, savedRows(t, pool, second))
		require.Equal(t, closing8, resultRows(t, pool, 8))
	})
	t.Run("ARetryRunKeepsTheRowsOfTheRunItRetries", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		partial := newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, partial, 0)
		finish(t, pool, partial, domain.EstadoParcial, false)
		nr := runOf(7, domain.EstadoParcial, twoChunks[1:2])
		nr.Mode, nr.RetryOf = domain.ModeRetryFailed, partial
		nr.Chunks = []store.ChunkRange{{Index: 0, FirstID: 102, LastID: 103, Employees: 2, Weight: 2}}
		retry, err := store.StartRun(t.Context(), pool, nr)
		require.NoError(t, err)
		dispatchAndCommit(t, pool, retry, 0)
		finish(t, pool, retry, domain.EstadoConsolidados, false)
		requireRowsOfRun(t, pool, partial, 1, 5)
		requireRowsOfRun(t, pool, retry, 2, 4)
	})
	t.Run("OneSavedRowAChunk", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, second := consolidatedTwice(t, pool)
		dispatchAndCommit(t, pool, second, 0)
		dispatchAndCommit(t, pool, second, 1)
		require.Equal(t, 3, savedRows(t, pool, second))
		require.Equal(t, 2, countRows(t, pool, "SELECT count(*) FROM consolidation_previous_chunk WHERE run_id = $1", second))
		require.Equal(t, 9, countRows(t, pool, `SELECT sum(json_array_length(concepts)) FROM consolidation_previous_chunk
			WHERE run_id = $1`, second), "the concept rows are saved with their chunk")
		require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_previous_result"))
	})
	t.Run("ACommitThatFailsAfterTheSaveSavesAndDeletesNothing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, second := consolidatedTwice(t, pool)
		before := resultRows(t, pool, 7)
		token := dispatch(t, pool, second, 1)
		// Luis twice: the save finds and moves both employees' previous rows, then
		// writing the chunk is refused (23505), after the save, in the same
		// transaction.
		recs := consolidated(t, pool, 7, 102, 103)
		recs = append(recs, recs[0])
		_, _, err := store.CommitChunk(t.Context(), pool, second, 1, token, 7, recs, testStats, nil)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "23505", pgErr.Code)
		require.Equal(t, before, resultRows(t, pool, 7), "the previous rows are where they were")
		require.Zero(t, savedRows(t, pool, second), "and nothing is saved")
		c, err := store.GetChunk(t.Context(), pool, second, 1)
		require.NoError(t, err)
		require.Equal(t, domain.ChunkRunning, c.Status)
	})
	t.Run("RowsSavedByAnEarlierVersionAreRestoredToo", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, second := consolidatedTwice(t, pool)
		before := resultRows(t, pool, 7)
		// Chunk 0's employee saved as a version before consolidation_previous_chunk
		// saved it (a jsonb row an employee), as a run it started and this version
		// ends finds it.
		_, err := pool.Exec(t.Context(), `
			WITH prev AS MATERIALIZED (
				SELECT e.* FROM nomina_empleado_consolidado e WHERE e.cierre_id = 7 AND e.empleado_origen_id = 101),
			concepts AS (
				DELETE FROM nomina_concepto_empleado_consolidado c USING prev p WHERE c.empleado_consolidado_id = p.id
				RETURNING c.*),
			saved AS (
				INSERT INTO consolidation_previous_result (run_id, employee_id, employee, concepts)
				SELECT $1, p.id, to_jsonb(p), (SELECT jsonb_agg(to_jsonb(c)) FROM concepts c) FROM prev p)
			DELETE FROM nomina_empleado_consolidado e USING prev p WHERE e.id = p.id`, second)
		require.NoError(t, err)
		require.Equal(t, 1, savedRows(t, pool, second))
		dispatchAndCommit(t, pool, second, 0)
		dispatchAndCommit(t, pool, second, 1)
		require.Equal(t, 3, savedRows(t, pool, second), "one employee saved the old way, two the new")
		finish(t, pool, second, domain.EstadoCancelada, true)
		require.Equal(t, before, resultRows(t, pool, 7))
		require.Zero(t, savedRows(t, pool, second))
	})
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprintf("RowsOfNoRunAreSavedAndRestoredToo/stale=%v", stale), func(t *testing.T) {
			t.Parallel()
			pool := loadClosing(t)
			writeWithoutRun(t, pool, 7, 101, 103) // written before the service kept run ids
			if stale {
				staleRows(t, pool, 7)
			}
			before := resultRows(t, pool, 7)
			runID := newRun(t, pool, twoChunks)
			dispatchAndCommit(t, pool, runID, 0)
			dispatchAndCommit(t, pool, runID, 1)
			requireRowsOfRun(t, pool, runID, 3, 9)
			if stale {
				require.Equal(t, 3, savedRows(t, pool, runID))
			} else {
				require.Zero(t, savedRows(t, pool, runID), "unchanged rows are kept, not saved")
				require.Equal(t, 3, keptRows(t, pool, runID))
			}
			finish(t, pool, runID, domain.EstadoCancelada, true)
			require.Equal(t, before, resultRows(t, pool, 7), "run ids NULL again")
		})
	}
	t.Run("TheSaveUsesTheIndexesWhateverThePlan", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		// Statistics of the nearly empty tables first, as a first closing filling
		// them finds them (autovacuum analyzes far less often than chunks commit).
		_, err := pool.Exec(t.Context(), "ANALYZE nomina_empleado_consolidado; ANALYZE nomina_concepto_empleado_consolidado")
		require.NoError(t, err)
		// A large closing 8 (20,000 employees, 100,000 concept rows), so a plan that
		// scanned a result table, or the closing's part of it, would cost that much
		// on every chunk.
		_, err = pool.Exec(t.Context(), `
			INSERT INTO nomina_empleado_cierre (id, cierre_id, rut, nombre, cargo, centro_costo, sueldo_base)
				SELECT 100000 + g, 8, g || '-0', 'n', 'c', 'cc', 1 FROM generate_series(1, 20000) g;
			INSERT INTO nomina_empleado_consolidado (id, cierre_id, empleado_origen_id, rut, nombre_completo, cargo,
				centro_costo, total_haberes, total_descuentos, liquido_pagar, fuentes_utilizadas, reglas_aplicadas)
				SELECT 100000 + g, 8, 100000 + g, g || '-0', 'n', 'c', 'cc', 1, 0, 1, '[]', '[]'
				FROM generate_series(1, 20000) g;
			INSERT INTO nomina_concepto_empleado_consolidado (empleado_consolidado_id, codigo_concepto, nombre_concepto,
				valor, tipo_concepto, fuente_dato)
				SELECT 100000 + g, 'C' || k, 'n', 1, 'haber', 'libro' FROM generate_series(1, 20000) g, generate_series(1, 5) k`)
		require.NoError(t, err)
		ruts := make([]string, 150)
		ids := make([]string, 150)
		for i := range ruts {
			ruts[i] = fmt.Sprintf("'%d-0'", 1+i*100)
			ids[i] = fmt.Sprint(100001 + i*100)
		}
		conn, err := pool.Acquire(t.Context())
		require.NoError(t, err)
		defer conn.Release()
		explain := func(stats, mode, statement, types, args string) string {
			name := fmt.Sprintf("s%d", len(stats)+len(mode)+len(statement)+len(types))
			_, err := conn.Exec(t.Context(), "DEALLOCATE ALL")
			require.NoError(t, err)
			_, err = conn.Exec(t.Context(), "PREPARE "+name+"("+types+") AS "+statement)
			require.NoError(t, err)
			var plan string
			require.NoError(t, conn.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) EXECUTE "+name+"("+args+")").Scan(&plan))
			return plan
		}
		for _, stats := range []string{"stale", "analyzed"} {
			if stats == "analyzed" {
				_, err = conn.Exec(t.Context(), "ANALYZE nomina_empleado_consolidado; ANALYZE nomina_concepto_empleado_consolidado")
				require.NoError(t, err)
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				_, err = conn.Exec(t.Context(), "SET plan_cache_mode = "+mode)
				require.NoError(t, err)
				find := explain(stats, mode, store.SQLFindPrevious, "bigint, text[], bigint",
					"8, ARRAY["+strings.Join(ruts, ",")+"], 1")
				require.Contains(t, find, "nomina_empleado_consolidado_cierre_rut_key", stats, mode)
				require.Regexp(t, `"Index Cond": "\(\(cierre_id = (\$1|'8'::bigint)\) AND \(\(rut\)::text = r\.rut\)\)"`, find,
					"one probe of the unique index a RUT (%s statistics, %s)", stats, mode)
				require.NotContains(t, find, "Seq Scan", stats, mode)
				concepts := explain(stats, mode, store.SQLPreviousConcepts, "bigint[]", "ARRAY["+strings.Join(ids, ",")+"]")
				require.Contains(t, concepts, "nomina_concepto_empleado_consolidado_empleado_codigo_key", stats, mode)
				require.NotContains(t, concepts, "Seq Scan", stats, mode)
				if stats == "analyzed" { // the save runs only when a forced run finds previous rows
					save := explain(stats, mode, store.SQLSavePrevious, "bigint, integer, bigint[], bigint[], bigint[]",
						"1, 0, ARRAY["+strings.Join(ids[:75], ",")+"], ARRAY["+strings.Join(ids[75:], ",")+"], '{}'")
					require.NotContains(t, save, "Seq Scan", mode)
				}
			}
		}
	})
}

// djangoClosing is closing 7 of closingSQL on the Django schema: its closing rows
// need the columns Django fills in Python.
func djangoClosing(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.OpenPool(t, pgtest.NewDjangoDatabase(t))
	sql := strings.Replace(closingSQL,
		"INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES\n  (7, 3, 2026, 'verificado_sin_discrepancias'), (8, 3, 2026, 'verificado_sin_discrepancias');",
		`INSERT INTO nomina_cierrenomina (id, mes, anno, estado, cliente, fecha_creacion) VALUES
		  (7, 3, 2026, 'verificado_sin_discrepancias', 'acme', now()), (8, 3, 2026, 'verificado_sin_discrepancias', 'acme', now());`, 1)
	require.NotEqual(t, closingSQL, sql)
	_, err := pool.Exec(t.Context(), sql)
	require.NoError(t, err)
	return pool
}

func TestPreviousResultsOnTheDjangoSchema(t *testing.T) {
	t.Parallel()
	pool := djangoClosing(t)
	// Columns the service does not know, NOT NULL without a default, as an
	// application adds them: a restore must put back their values too.
	_, err := pool.Exec(t.Context(), `
		ALTER TABLE nomina_empleado_consolidado ADD COLUMN revisado_por varchar(40) NULL;
		ALTER TABLE nomina_concepto_empleado_consolidado ADD COLUMN glosa text NULL`)
	require.NoError(t, err)
	_, second := consolidatedTwice(t, pool)
	_, err = pool.Exec(t.Context(), `
		UPDATE nomina_empleado_consolidado SET revisado_por = 'analista-' || id;
		UPDATE nomina_concepto_empleado_consolidado SET glosa = 'glosa ' || id;
		ALTER TABLE nomina_empleado_consolidado ALTER COLUMN revisado_por SET NOT NULL;
		ALTER TABLE nomina_concepto_empleado_consolidado ALTER COLUMN glosa SET NOT NULL;
		ALTER TABLE nomina_empleado_consolidado ALTER COLUMN revisado_por SET DEFAULT 'servicio';
		ALTER TABLE nomina_concepto_empleado_consolidado ALTER COLUMN glosa SET DEFAULT ''`)
	require.NoError(t, err)
	before := resultRows(t, pool, 7)
	require.Contains(t, strings.Join(before, "\n"), "analista-")

	dispatchAndCommit(t, pool, second, 0)
	oneRowPerEmployee(t, pool)
	dispatchAndCommit(t, pool, second, 1)
	finish(t, pool, second, domain.EstadoCancelada, true)
	require.Equal(t, before, resultRows(t, pool, 7), "every column, the application's too, is put back")
	require.Zero(t, savedRows(t, pool, second))

	// And a run that keeps its rows replaces them, deferred foreign keys and all.
	third := newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, third, 0)
	dispatchAndCommit(t, pool, third, 1)
	finish(t, pool, third, domain.EstadoConsolidados, false)
	requireRowsOfRun(t, pool, third, 3, 9)
	oneRowPerEmployee(t, pool)
	require.Zero(t, savedRows(t, pool, third))
	require.Zero(t, orphanConcepts(t, pool))
}

// olderReleaseRemovingEnd is what a run's end removing its rows did before
// consolidation_previous_chunk (migration 018): it puts back only what
// consolidation_previous_result holds.
var olderReleaseRemovingEnd = []string{
	`DELETE FROM nomina_concepto_empleado_consolidado c USING nomina_empleado_consolidado e
	WHERE c.empleado_consolidado_id = e.id AND e.consolidation_run_id = $1`,
	`DELETE FROM nomina_empleado_consolidado e WHERE e.consolidation_run_id = $1`,
	`INSERT INTO nomina_empleado_consolidado OVERRIDING SYSTEM VALUE
	SELECT r.* FROM consolidation_previous_result s,
		jsonb_populate_record(NULL::nomina_empleado_consolidado, s.employee) r
	WHERE s.run_id = $1`,
	`INSERT INTO nomina_concepto_empleado_consolidado OVERRIDING SYSTEM VALUE
	SELECT r.* FROM consolidation_previous_result s,
		jsonb_populate_recordset(NULL::nomina_concepto_empleado_consolidado, s.concepts) r
	WHERE s.run_id = $1`,
	`DELETE FROM consolidation_previous_result WHERE run_id = $1`,
}

// rollbackSQL is deploy/README.md's hand-over of saved chunks to a release before
// migration 018.
func rollbackSQL(t *testing.T) string {
	t.Helper()
	const marker = "<!-- tested: TestSavedChunksHandedToAnOlderRelease (pkg/store) -->\n```sql\n"
	readme, err := os.ReadFile("../../deploy/README.md")
	require.NoError(t, err)
	_, rest, found := strings.Cut(string(readme), marker)
	require.True(t, found, "deploy/README.md has the hand-over block")
	sql, _, found := strings.Cut(rest, "```")
	require.True(t, found)
	return sql
}

// TestSavedChunksHandedToAnOlderRelease: a forced run whose chunks this release
// committed, ended removing its rows by a coordinator of the release before 018,
// loses the previous rows unless deploy/README.md's hand-over ran first; with it,
// they come back exactly.
func TestSavedChunksHandedToAnOlderRelease(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ handedOver, kept bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		handedOver := c.handedOver
		t.Run(fmt.Sprintf("handedOver=%v/kept=%v", c.handedOver, c.kept), func(t *testing.T) {
			t.Parallel()
			var pool *pgxpool.Pool
			var second int64
			var before []string
			if c.kept { // Ana's row kept, Luis's and Rosa's replaced
				pool = loadClosing(t)
				_, second = consolidatedTwice(t, pool)
				_, err := pool.Exec(t.Context(), `UPDATE nomina_empleado_consolidado SET cargo = replace(cargo, ' (antes)', '')
					WHERE cierre_id = 7 AND empleado_origen_id = 101`)
				require.NoError(t, err)
				before = resultRows(t, pool, 7)
				dispatchAndCommit(t, pool, second, 0)
				dispatchAndCommit(t, pool, second, 1)
				require.Equal(t, 1, keptRows(t, pool, second))
				require.Equal(t, 2, savedRows(t, pool, second))
			} else {
				pool, second, before = replacedBySecondRun(t)
			}
			if handedOver {
				_, err := pool.Exec(t.Context(), rollbackSQL(t))
				require.NoError(t, err)
				require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_previous_chunk"))
			}
			require.NoError(t, pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
				for _, sql := range olderReleaseRemovingEnd {
					if _, err := tx.Exec(t.Context(), sql, second); err != nil {
						return err
					}
				}
				return nil
			}))
			if !handedOver {
				require.Zero(t, countRows(t, pool, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = 7"),
					"the older release does not find the saved chunks")
				return
			}
			require.Equal(t, before, resultRows(t, pool, 7))
			require.Zero(t, savedRows(t, pool, second))
		})
	}
}

// rowsOf is resultRows of the employee rows of closing 7 with the given libro ids
// and their concept rows.
func rowsOf(t *testing.T, pool *pgxpool.Pool, libroIDs ...int64) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT 'employee ' || e::text FROM nomina_empleado_consolidado e
		WHERE e.cierre_id = 7 AND e.empleado_origen_id = ANY($1)
		UNION ALL
		SELECT 'concept ' || c::text FROM nomina_concepto_empleado_consolidado c
		JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id
		WHERE e.cierre_id = 7 AND e.empleado_origen_id = ANY($1)
		ORDER BY 1`, libroIDs)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// employeeRowOf is the id and run id of closing 7's row of a libro employee.
func employeeRowOf(t *testing.T, pool *pgxpool.Pool, libroID int64) (id, runID int64) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT id, coalesce(consolidation_run_id, 0) FROM nomina_empleado_consolidado
		WHERE cierre_id = 7 AND empleado_origen_id = $1`, libroID).Scan(&id, &runID))
	return id, runID
}

// TestReRunKeepsUnchangedRows: a forced run of closing 7 after its libro changed
// keeps Ana's row (unchanged: re-stamped, same ids), replaces Luis's (a concept
// changed), writes Cristóbal's (new in the libro) and, when it keeps its rows,
// removes Rosa's (no longer in any chunk); the previous rows stay readable until
// the end, and a run that removes its rows puts back exactly what was there.
func TestReRunKeepsUnchangedRows(t *testing.T) {
	t.Parallel()
	// Chunks of the second run: Rosa (103) is in none of them.
	secondChunks := []store.ChunkRange{
		{Index: 0, FirstID: 101, LastID: 101, Employees: 1, Weight: 1},
		{Index: 1, FirstID: 102, LastID: 102, Employees: 1, Weight: 1},
		{Index: 2, FirstID: 104, LastID: 104, Employees: 1, Weight: 1},
	}
	rerun := func(t *testing.T) (pool *pgxpool.Pool, first, second int64, before []string) {
		t.Helper()
		pool = loadClosing(t)
		first = newRun(t, pool, twoChunks)
		dispatchAndCommit(t, pool, first, 0)
		dispatchAndCommit(t, pool, first, 1)
		finish(t, pool, first, domain.EstadoConsolidados, false)
		_, err := pool.Exec(t.Context(), `
			UPDATE nomina_registro_concepto_empleado SET valor = 510000.00 WHERE id = 1006;
			INSERT INTO nomina_empleado_cierre (id, cierre_id, rut, nombre, cargo, centro_costo, sueldo_base) VALUES
			  (104, 7, '9876543-3', 'Cristóbal Vera', 'Chofer', 'CC-40', 600000);
			INSERT INTO nomina_registro_concepto_empleado (id, empleado_id, codigo_concepto, nombre_concepto, valor, tipo_concepto) VALUES
			  (1010, 104, 'SB', 'Sueldo base', 600000.00, 'haber')`)
		require.NoError(t, err)
		before = resultRows(t, pool, 7)
		anaID, _ := employeeRowOf(t, pool, 101)
		ana := rowsOf(t, pool, 101)
		luisID, _ := employeeRowOf(t, pool, 102)
		rosa := rowsOf(t, pool, 103)

		second = newRun(t, pool, secondChunks)
		require.Equal(t, chunk0Sum, dispatchAndCommit(t, pool, second, 0), "a kept employee counts as written")
		id, run := employeeRowOf(t, pool, 101)
		require.Equal(t, anaID, id, "Ana's row is kept")
		require.Equal(t, second, run, "and re-stamped")
		require.Equal(t, strings.ReplaceAll(strings.Join(ana, "\n"), fmt.Sprintf(",%d)", first), fmt.Sprintf(",%d)", second)),
			strings.Join(rowsOf(t, pool, 101), "\n"), "only the run id changed; the concept rows are the same rows")
		require.Zero(t, savedRows(t, pool, second))
		require.Equal(t, 1, keptRows(t, pool, second))

		dispatchAndCommit(t, pool, second, 1)
		id, run = employeeRowOf(t, pool, 102)
		require.NotEqual(t, luisID, id, "Luis's row is replaced")
		require.Equal(t, second, run)
		require.Equal(t, 1, savedRows(t, pool, second))
		require.Equal(t, 2, countRows(t, pool, `SELECT sum(json_array_length(concepts)) FROM consolidation_previous_chunk
			WHERE run_id = $1`, second), "Luis's previous concept rows are saved")

		dispatchAndCommit(t, pool, second, 2)
		_, run = employeeRowOf(t, pool, 104)
		require.Equal(t, second, run, "Cristóbal's row is new")
		require.Equal(t, 1, savedRows(t, pool, second), "a new employee saves nothing")
		require.Equal(t, rosa, rowsOf(t, pool, 103), "Rosa's row stays readable until the run ends")
		return pool, first, second, before
	}

	t.Run("KeepingEnd", func(t *testing.T) {
		t.Parallel()
		pool, _, second, _ := rerun(t)
		finish(t, pool, second, domain.EstadoConsolidados, false)
		requireRowsOfRun(t, pool, second, 3, 5+2+1)
		require.Zero(t, countRows(t, pool, `SELECT count(*) FROM nomina_empleado_consolidado
			WHERE cierre_id = 7 AND consolidation_run_id IS DISTINCT FROM $1`, second), "every row is the run's; Rosa's is gone")
		require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_previous_chunk WHERE run_id = $1", second))
		require.Zero(t, orphanConcepts(t, pool))
	})
	for _, end := range []domain.Estado{domain.EstadoCancelada, domain.EstadoError} {
		t.Run("RemovingEndRestoresExactly/"+string(end), func(t *testing.T) {
			t.Parallel()
			pool, first, second, before := rerun(t)
			finish(t, pool, second, end, true)
			require.Equal(t, before, resultRows(t, pool, 7), "Ana's run id, Luis's previous rows, no Cristóbal")
			requireRowsOfRun(t, pool, first, 3, 9)
			require.Zero(t, countRows(t, pool, "SELECT count(*) FROM consolidation_previous_chunk WHERE run_id = $1", second))
		})
	}
}

// TestRestoredJSONNullStaysJSONNull: a jsonb column holding JSON null (the
// service's fuentes_utilizadas, an application's NOT NULL column of the concept
// rows) is put back as JSON null, not SQL NULL, by a run that removes its rows.
func TestRestoredJSONNullStaysJSONNull(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	_, err := pool.Exec(t.Context(), `ALTER TABLE nomina_concepto_empleado_consolidado
		ADD COLUMN revision jsonb NOT NULL DEFAULT 'null'`)
	require.NoError(t, err)
	_, second := consolidatedTwice(t, pool) // every row stale: all saved
	_, err = pool.Exec(t.Context(), `UPDATE nomina_empleado_consolidado SET fuentes_utilizadas = 'null'
		WHERE cierre_id = 7 AND empleado_origen_id = 101`)
	require.NoError(t, err)
	before := resultRows(t, pool, 7)
	dispatchAndCommit(t, pool, second, 0)
	dispatchAndCommit(t, pool, second, 1)
	require.Equal(t, 3, savedRows(t, pool, second))
	finish(t, pool, second, domain.EstadoError, true)
	require.Equal(t, before, resultRows(t, pool, 7))
	require.Equal(t, 1, countRows(t, pool, `SELECT count(*) FROM nomina_empleado_consolidado
		WHERE cierre_id = 7 AND jsonb_typeof(fuentes_utilizadas) = 'null'`))
	require.Equal(t, 9, countRows(t, pool, `SELECT count(*) FROM nomina_concepto_empleado_consolidado c
		JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id
		WHERE e.cierre_id = 7 AND jsonb_typeof(c.revision) = 'null'`))
}

// TestReRunReplacesAnEmployeeWhoseConceptChangedAlone: a concept's name changed in
// the libro leaves Rosa's employee row as it was (same totals) but not her concept
// rows, so her rows are replaced, and Luis's, unchanged, kept.
func TestReRunReplacesAnEmployeeWhoseConceptChangedAlone(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	first := newRun(t, pool, twoChunks)
	dispatchAndCommit(t, pool, first, 0)
	dispatchAndCommit(t, pool, first, 1)
	finish(t, pool, first, domain.EstadoConsolidados, false)
	_, err := pool.Exec(t.Context(), "UPDATE nomina_registro_concepto_empleado SET nombre_concepto = 'Sueldo base mensual' WHERE id = 1008")
	require.NoError(t, err)
	luisID, _ := employeeRowOf(t, pool, 102)
	rosaID, _ := employeeRowOf(t, pool, 103)
	second := newRun(t, pool, twoChunks)
	require.Equal(t, chunk1Sum, dispatchAndCommit(t, pool, second, 1))
	id, run := employeeRowOf(t, pool, 102)
	require.Equal(t, [2]int64{luisID, second}, [2]int64{id, run}, "Luis's row kept and re-stamped")
	id, run = employeeRowOf(t, pool, 103)
	require.NotEqual(t, rosaID, id, "Rosa's row replaced")
	require.Equal(t, second, run)
	require.Equal(t, 1, savedRows(t, pool, second))
	require.Equal(t, 1, keptRows(t, pool, second))
	require.Equal(t, 1, countRows(t, pool, `SELECT count(*) FROM nomina_concepto_empleado_consolidado
		WHERE empleado_consolidado_id = $1 AND nombre_concepto = 'Sueldo base mensual'`, id))
}
