package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/store"
)

func TestReadChunkRefusesRepeatedNovedadesRUT(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := loadClosing(t)
	_, err := pool.Exec(ctx, `INSERT INTO nomina_empleado_cierre_novedades (id, cierre_id, rut, nombre, cargo, centro_costo)
		VALUES (504, 7, '7654321-6', 'Luis Soto', 'Operario', 'CC-20')`)
	require.NoError(t, err)
	closing, err := store.GetClosing(ctx, pool, 7)
	require.NoError(t, err)
	_, err = store.ReadChunk(ctx, pool, closing, 101, 103)
	var re *store.RUTError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "nomina_empleado_cierre_novedades", re.Table)
	require.Contains(t, []int64{502, 504}, re.RowID, "the second of the two rows read")
	require.NotContains(t, err.Error(), "7654321", "errors must not carry RUTs")
}

// failingBatch fails every batch before it is sent, as a pool does when it cannot
// get a connection.
type failingBatch struct {
	store.Querier
	err error
}

func (f failingBatch) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	return pgx.FailedBatchResults(b, f.err)
}

func TestReadChunkReportsAFailedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := loadClosing(t)
	closing, err := store.GetClosing(ctx, pool, 7)
	require.NoError(t, err)
	lost := errors.New("connection lost")
	_, err = store.ReadChunk(ctx, failingBatch{Querier: pool, err: lost}, closing, 101, 103)
	require.ErrorIs(t, err, lost)
	require.EqualError(t, err, "reading libro lines of closing 7: connection lost")
}

// TestReadChunkReportsTheQueryThatFailed makes the last query of the batch fail
// while it runs: its error names what was being read and keeps PostgreSQL's code.
func TestReadChunkReportsTheQueryThatFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := loadClosing(t)
	closing, err := store.GetClosing(ctx, pool, 7)
	require.NoError(t, err)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	_, err = tx.Exec(ctx, `
		CREATE FUNCTION pg_temp.fail() RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'absences unreadable' USING ERRCODE = 'P0001'; END $$;
		ALTER TABLE nomina_movimiento_ausentismo RENAME TO ausentismo_real;
		CREATE VIEW nomina_movimiento_ausentismo AS
		  SELECT id, rut, fecha_inicio, CASE WHEN pg_temp.fail() THEN fecha_fin END AS fecha_fin FROM ausentismo_real`)
	require.NoError(t, err)

	_, err = store.ReadChunk(ctx, tx, closing, 101, 103)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "P0001", pgErr.Code)
	require.ErrorContains(t, err, "reading absences: ")
}

// TestReadChunkSkipsOtherClosingsInItsRange: libro lines are read by the chunk's
// id range, and ids of two closings may interleave (the application inserts them
// concurrently): an employee of another closing inside the range brings none of
// its lines into the chunk.
func TestReadChunkSkipsOtherClosingsInItsRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := loadClosing(t)
	_, err := pool.Exec(ctx, `
		INSERT INTO nomina_empleado_cierre (id, cierre_id, rut, nombre, cargo, centro_costo, sueldo_base)
		VALUES (150, 8, '23000000-k', 'Rosa Díaz', 'Contadora', 'CC-30', 1);
		INSERT INTO nomina_empleado_cierre (id, cierre_id, rut, nombre, cargo, centro_costo, sueldo_base)
		VALUES (160, 7, '11111111-1', 'Juan Rojas', 'Vendedor', 'CC-40', 1);
		INSERT INTO nomina_registro_concepto_empleado (id, empleado_id, codigo_concepto, nombre_concepto, valor, tipo_concepto)
		VALUES (1501, 150, 'SB', 'Sueldo base', 1.00, 'haber'), (1601, 160, 'SB', 'Sueldo base', 2.50, 'haber')`)
	require.NoError(t, err)
	closing, err := store.GetClosing(ctx, pool, 7)
	require.NoError(t, err)
	src, err := store.ReadChunk(ctx, pool, closing, 101, 160)
	require.NoError(t, err)
	lines := map[int64][]int64{}
	for _, e := range src.Employees {
		for _, l := range e.Libro.Lines {
			lines[e.Libro.ID] = append(lines[e.Libro.ID], l.ID)
		}
	}
	require.Equal(t, map[int64][]int64{101: {1001, 1002, 1003, 1004, 1005}, 102: {1006, 1007}, 103: {1008, 1009}, 160: {1601}},
		sortedLines(lines))
	require.EqualValues(t, 250, src.Employees[3].Libro.Lines[0].Value, "2.50 in cents")
}

func sortedLines(m map[int64][]int64) map[int64][]int64 {
	for _, ids := range m {
		slices.Sort(ids)
	}
	return m
}
