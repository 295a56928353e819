package store_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestCheckRUTs(t *testing.T) {
	t.Parallel()

	t.Run("FindsNothingInACleanClosing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		p, err := store.CheckRUTs(t.Context(), pool, 7, 20)
		require.NoError(t, err)
		require.True(t, p.OK(), "%+v", p)
	})
	t.Run("FindsBadAndRepeatedRUTsOfBothSourcesInOneCall", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, err := pool.Exec(t.Context(), `
			UPDATE nomina_empleado_cierre SET rut = '12.345.678-0' WHERE id = 102;   -- a wrong check digit
			UPDATE nomina_empleado_cierre SET rut = '012.345.678-5' WHERE id = 103;  -- 101's RUT, written otherwise
			UPDATE nomina_empleado_cierre_novedades SET rut = 'sin rut' WHERE id = 502;
			UPDATE nomina_empleado_cierre_novedades SET rut = '12345678-5' WHERE id = 503;
			UPDATE nomina_empleado_cierre SET rut = 'x' WHERE id = 201;              -- closing 8's`)
		require.NoError(t, err)
		p, err := store.CheckRUTs(t.Context(), pool, 7, 20)
		require.NoError(t, err)
		require.Equal(t, 2, p.BadCount)
		require.Equal(t, []store.BadRUT{{Table: "nomina_empleado_cierre", RowID: 102, Raw: "12.345.678-0"},
			{Table: "nomina_empleado_cierre_novedades", RowID: 502, Raw: "sin rut"}}, p.Bad)
		require.Equal(t, 2, p.RepeatedCount)
		require.Equal(t, []store.RepeatedRUT{{Table: "nomina_empleado_cierre", RUT: "12345678-5", RowIDs: []int64{101, 103}},
			{Table: "nomina_empleado_cierre_novedades", RUT: "12345678-5", RowIDs: []int64{501, 503}}}, p.Repeated)

		// The limit bounds the examples, not the counts.
		p, err = store.CheckRUTs(t.Context(), pool, 7, 1)
		require.NoError(t, err)
		require.Equal(t, []int{2, 1, 2, 1}, []int{p.BadCount, len(p.Bad), p.RepeatedCount, len(p.Repeated)})
	})
}

// The count of novedades without a libro match looks each novedad up in the
// libro's (closing, canonical RUT) index: the canonical RUT is computed once a
// novedad, never for the libro's rows (a hash anti join computed it for every
// libro row of the closing, on the start's path: docs/benchmarks.md, "The
// serial steps of a large closing"). Counted with PostgreSQL's own count of the
// function's calls in the transaction: no clock.
func TestUnmatchedNovedadesComputeNoLibroRUT(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, closingID, novedades := rutClosing(t, 27)
	var want int
	// The same question asked as plainly as it reads.
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM nomina_empleado_cierre_novedades n
		WHERE n.cierre_id = $1 AND NOT EXISTS (SELECT FROM nomina_empleado_cierre e WHERE e.cierre_id = n.cierre_id
		                AND nomina_rut_canonical(e.rut) = nomina_rut_canonical(n.rut))`, closingID).Scan(&want))
	require.Positive(t, want, "the closing has no unmatched novedades; the count would not be checked")

	calls := canonicalRUTsComputed(t, pool, func(tx pgx.Tx) {
		got, err := store.CountUnmatchedNovedades(ctx, tx, closingID)
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
	require.Positive(t, calls, "no call of the canonical RUT counted: the test would not see a libro computed")
	require.LessOrEqual(t, calls, novedades, "canonical RUTs computed to count the unmatched novedades of %d novedades and %d libro rows",
		novedades, rutEmployees)
}

// The RUT checks read each row's canonical RUT, id and raw RUT from the
// (closing, canonical RUT) indexes (migration 020) and compute no canonical RUT
// of the libro's rows: computing one for every row of the closing was most of a
// large closing's start (docs/benchmarks.md, "The serial steps of a large
// closing"). Counted with PostgreSQL's own count of the function's calls in the
// transaction: no clock.
func TestRUTChecksComputeNoLibroRUT(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, closingID, novedades := rutClosing(t, 29)
	// One libro RUT repeated, written otherwise, so the checks have something to find.
	_, err := pool.Exec(ctx, `UPDATE nomina_empleado_cierre SET rut = '0' || (SELECT rut FROM nomina_empleado_cierre
		WHERE cierre_id = $1 ORDER BY id LIMIT 1) WHERE id = (SELECT max(id) FROM nomina_empleado_cierre WHERE cierre_id = $1)`, closingID)
	require.NoError(t, err)

	calls := canonicalRUTsComputed(t, pool, func(tx pgx.Tx) {
		p, err := store.CheckRUTs(ctx, tx, closingID, 20)
		require.NoError(t, err)
		require.Equal(t, 1, p.RepeatedCount, "%+v", p)
	})
	require.LessOrEqual(t, calls, novedades, "canonical RUTs computed to check the RUTs of %d novedades and %d libro rows",
		novedades, rutEmployees)
}

// rutEmployees is the libro size of rutClosing's closings.
const rutEmployees = 3000

// rutClosing generates a closing of rutEmployees libro rows (analyzed) and
// returns a pool on its database, its id and how many novedades rows it has:
// fewer than half its libro rows, so a count of canonical RUTs computed tells
// the two apart.
func rutClosing(t *testing.T, seed uint64) (pool *pgxpool.Pool, closingID int64, novedades int) {
	t.Helper()
	dbURL, closingID, _ := plansFixture(t, rutEmployees, seed)
	pool = pgtest.OpenPool(t, dbURL)
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1`,
		closingID).Scan(&novedades))
	require.Positive(t, novedades)
	require.Less(t, novedades, rutEmployees/2, "the test needs fewer novedades than libro rows to tell them apart")
	return pool, closingID, novedades
}

// canonicalRUTsComputed runs fn in a transaction of pool and returns how many
// times it computed a canonical RUT (nomina_rut_canonical's calls, as
// PostgreSQL counts them with track_functions).
func canonicalRUTsComputed(t *testing.T, pool *pgxpool.Pool, fn func(tx pgx.Tx)) int {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL track_functions = 'pl'")
	require.NoError(t, err)
	fn(tx)
	var calls int
	require.NoError(t, tx.QueryRow(ctx,
		"SELECT coalesce(pg_stat_get_xact_function_calls('nomina_rut_canonical(text)'::regprocedure), 0)").Scan(&calls))
	return calls
}
