package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/rut"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// closingSQL is a small closing (7, March 2026) written the way real files arrive:
// RUTs with dots, leading zeros and lower-case k, codes with spaces, mixed-case
// types, duplicate lines, movements on both sides of the month, and a second
// closing (8) with the same people that must not leak into closing 7.
const closingSQL = `
INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES
  (7, 3, 2026, 'verificado_sin_discrepancias'), (8, 3, 2026, 'verificado_sin_discrepancias');

INSERT INTO nomina_empleado_cierre (id, cierre_id, rut, nombre, cargo, centro_costo, sueldo_base) VALUES
  (101, 7, '12.345.678-5', ' Ana Pérez ', 'Analista', 'CC-10', 1000000),
  (102, 7, '7654321-6', '   ', 'Operario', 'CC-20', 500000),
  (103, 7, '23000000-k', 'Rosa Díaz', 'Contadora', ' CC-30 ', 800000),
  (201, 8, '12345678-5', 'Ana Pérez', 'Analista', 'CC-10', 1000000);

INSERT INTO nomina_registro_concepto_empleado (id, empleado_id, codigo_concepto, nombre_concepto, valor, tipo_concepto) VALUES
  (1001, 101, 'SB ', 'Sueldo base', 1000000.00, 'Haber'),
  (1002, 101, 'AFP', 'AFP', 110000.00, 'descuento'),
  (1004, 101, 'BONO', 'Bono extra', 25000.50, 'haber'),
  (1003, 101, 'BONO', 'Bono', 50000.00, 'haber'),
  (1005, 101, 'DIAS', 'Días trabajados', 30.00, 'informativo'),
  (1006, 102, 'SB', 'Sueldo base', 500000.00, 'haber'),
  (1007, 102, 'ANT', 'Anticipo', 600000.00, 'descuento'),
  (1008, 103, 'SB', 'Sueldo base', 800000.01, 'haber'),
  (1009, 103, 'SALUD', 'Salud', 56000.01, 'descuento'),
  (2001, 201, 'SB', 'Sueldo base', 999.00, 'haber');

INSERT INTO nomina_empleado_cierre_novedades (id, cierre_id, rut, nombre, cargo, centro_costo) VALUES
  (501, 7, '012345678-5', 'Ana P.', 'Jefa de Área', 'CC-99'),
  (502, 7, '7.654.321-6', 'Luis Soto', NULL, NULL),
  (503, 7, '11.111.111-1', 'Sin Libro', 'Nadie', NULL),
  (601, 8, '12.345.678-5', 'Otra', 'Otro cargo', NULL);

INSERT INTO nomina_registro_concepto_empleado_novedades (id, empleado_id, codigo_concepto, nombre_concepto, valor, tipo_concepto) VALUES
  (5001, 501, 'SB', 'Sueldo base nuevo', 1100000.00, 'haber'),
  (5002, 501, 'AFP', 'AFP', 0.00, 'descuento'),
  (5003, 501, 'HEX', 'Horas extra', 0.00, 'haber'),
  (5004, 501, 'COL', 'Colación', 45000.25, 'HABER'),
  (5005, 503, 'SB', 'Sueldo base', 1.00, 'haber'),
  (6001, 601, 'SB', 'Sueldo base', 777.00, 'haber');

INSERT INTO nomina_movimiento_alta_baja (rut, tipo_movimiento, fecha_movimiento) VALUES
  ('12345678-5', 'Ingreso', '2026-03-10'),
  ('7654321-6', 'finiquito', '2026-04-01'),
  ('7.654.321-6', ' FINIQUITO ', '2026-03-31'),
  ('23000000-K', 'ingreso', '2025-03-05'),
  ('23000000-1', 'ingreso', '2026-03-05');

INSERT INTO nomina_movimiento_ausentismo (rut, tipo_ausentismo, fecha_inicio, fecha_fin, dias_ausentismo) VALUES
  ('12.345.678-5', 'licencia', '2026-02-25', '2026-03-03', 7),
  ('007654321-6', 'licencia', '2026-01-15', NULL, 0),
  ('23.000.000-K', 'licencia', '2026-04-02', '2026-04-09', 8);
`

type employeeRow struct {
	Origen                 int64
	RUT, Nombre, Cargo, CC string
	Ingreso, Finiquito     bool
	Ausentismo             bool
	Haberes, Desc, Liquido string
	Fuentes, Reglas        []string
	Discrepancias          int
}

type conceptRow struct {
	Code, Name, Value, Type, Source string
}

// want is every row closing 7 must produce, computed by hand.
var want = map[string]struct {
	emp      employeeRow
	concepts []conceptRow
}{
	"12345678-5": {
		emp: employeeRow{
			Origen: 101, RUT: "12345678-5", Nombre: "Ana Pérez", Cargo: "Jefa de Área", CC: "CC-10",
			Ingreso: true, Ausentismo: true,
			Haberes: "1220000.75", Desc: "110000.00", Liquido: "1110000.75",
			Fuentes:       []string{"libro", "novedades", "movimientos"},
			Reglas:        []string{"R1", "R3.cargo", "R4.code", "R4.sum", "R5", "R7"},
			Discrepancias: 1,
		},
		concepts: []conceptRow{
			{"AFP", "AFP", "110000.00", "descuento", "libro"},
			{"BONO", "Bono", "75000.50", "haber", "libro"},
			{"COL", "Colación", "45000.25", "haber", "novedades"},
			{"DIAS", "Días trabajados", "30.00", "informativo", "libro"},
			{"SB", "Sueldo base nuevo", "1100000.00", "haber", "novedades"},
		},
	},
	"7654321-6": {
		emp: employeeRow{
			Origen: 102, RUT: "7654321-6", Nombre: "Luis Soto", Cargo: "Operario", CC: "CC-20",
			Finiquito: true, Ausentismo: true,
			Haberes: "500000.00", Desc: "600000.00", Liquido: "-100000.00",
			Fuentes: []string{"libro", "novedades", "movimientos"},
			Reglas:  []string{"R3.nombre", "R7"},
		},
		concepts: []conceptRow{
			{"ANT", "Anticipo", "600000.00", "descuento", "libro"},
			{"SB", "Sueldo base", "500000.00", "haber", "libro"},
		},
	},
	"23000000-K": {
		emp: employeeRow{
			Origen: 103, RUT: "23000000-K", Nombre: "Rosa Díaz", Cargo: "Contadora", CC: "CC-30",
			Haberes: "800000.01", Desc: "56000.01", Liquido: "744000.00",
			Fuentes: []string{"libro"},
			Reglas:  []string{"R1"},
		},
		concepts: []conceptRow{
			{"SALUD", "Salud", "56000.01", "descuento", "libro"},
			{"SB", "Sueldo base", "800000.01", "haber", "libro"},
		},
	},
}

func loadClosing(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(context.Background(), closingSQL)
	require.NoError(t, err)
	return pool
}

// consolidate runs store + rules over id ranges of closing 7 and commits.
func consolidate(t *testing.T, pool *pgxpool.Pool, ranges [][2]int64) store.WriteSummary {
	t.Helper()
	ctx := context.Background()
	var total store.WriteSummary
	for _, r := range ranges {
		recs := consolidated(t, pool, 7, r[0], r[1])
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			sum, err := store.WriteResults(ctx, tx, 7, 0, time.Now(), recs)
			total.Employees += sum.Employees
			total.Records += sum.Records
			total.TotalHaberes += sum.TotalHaberes
			total.TotalDescuentos += sum.TotalDescuentos
			total.LiquidoPagar += sum.LiquidoPagar
			return err
		})
		require.NoError(t, err)
	}
	return total
}

func requireWrittenRowsAreTheHandComputedOnes(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `
		SELECT id, empleado_origen_id, rut, nombre_completo, cargo, centro_costo, es_ingreso, es_finiquito,
		       tiene_ausentismo, total_haberes::text, total_descuentos::text, liquido_pagar::text,
		       fuentes_utilizadas, reglas_aplicadas, discrepancias_resueltas
		FROM nomina_empleado_consolidado WHERE cierre_id = 7`)
	require.NoError(t, err)
	defer rows.Close() // a failed assertion must not leave the connection busy
	ids := map[string]int64{}
	seen := 0
	for rows.Next() {
		var id int64
		var got employeeRow
		require.NoError(t, rows.Scan(&id, &got.Origen, &got.RUT, &got.Nombre, &got.Cargo, &got.CC, &got.Ingreso,
			&got.Finiquito, &got.Ausentismo, &got.Haberes, &got.Desc, &got.Liquido, &got.Fuentes, &got.Reglas,
			&got.Discrepancias))
		w, ok := want[got.RUT]
		require.True(t, ok, "unexpected consolidated RUT %s", got.RUT)
		require.Equal(t, w.emp, got)
		ids[got.RUT] = id
		seen++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(want), seen, "consolidated employees of closing 7")

	for r, w := range want {
		rows, err := pool.Query(ctx, `
			SELECT codigo_concepto, nombre_concepto, valor::text, tipo_concepto, fuente_dato
			FROM nomina_concepto_empleado_consolidado WHERE empleado_consolidado_id = $1 ORDER BY codigo_concepto`, ids[r])
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[conceptRow])
		require.NoError(t, err)
		require.Equal(t, w.concepts, got, "concepts of %s", r)
	}

	var other int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id <> 7").Scan(&other))
	require.Zero(t, other, "rows written for another closing")
}

func TestConsolidateSmallClosing(t *testing.T) {
	t.Parallel()

	t.Run("OneChunk", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		sum := consolidate(t, pool, [][2]int64{{101, 103}})
		requireWrittenRowsAreTheHandComputedOnes(t, pool)
		require.Equal(t, store.WriteSummary{
			Employees: 3, Records: 3 + 5 + 2 + 2,
			TotalHaberes: 122000075 + 50000000 + 80000001, TotalDescuentos: 11000000 + 60000000 + 5600001,
			LiquidoPagar: 111000075 - 10000000 + 74400000,
		}, sum)
	})
	t.Run("ChunksGiveTheSameRows", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		consolidate(t, pool, [][2]int64{{100, 101}, {102, 102}, {103, 150}})
		requireWrittenRowsAreTheHandComputedOnes(t, pool)
	})
	t.Run("EmptyRangeReadsNothing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		closing, err := store.GetClosing(context.Background(), pool, 7)
		require.NoError(t, err)
		src, err := store.ReadChunk(context.Background(), pool, closing, 104, 200)
		require.NoError(t, err)
		require.Empty(t, src.Employees)
	})
}

func TestWriteIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := loadClosing(t)
	closing, err := store.GetClosing(ctx, pool, 7)
	require.NoError(t, err)
	src, err := store.ReadChunk(ctx, pool, closing, 101, 103)
	require.NoError(t, err)
	var recs []rules.Consolidated
	for _, s := range src.Employees {
		rec, err := rules.Consolidate(s, src.Month)
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	// A concept code longer than the column makes the second COPY fail after the
	// employee rows went in: the transaction must leave nothing behind.
	recs[2].Lines = append(recs[2].Lines, rules.ConceptLine{Code: "CODE-TOO-LONG", Name: "x", Type: "haber", Source: "libro"})
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.WriteResults(ctx, tx, 7, 0, time.Now(), recs)
		return err
	})
	require.Error(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM nomina_empleado_consolidado").Scan(&n))
	require.Zero(t, n)
}

func TestGetClosingNotFound(t *testing.T) {
	t.Parallel()
	_, err := store.GetClosing(context.Background(), pgtest.NewPool(t), 42)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Contains(t, err.Error(), "closing 42")
}

func TestReadChunkRefusesBadLibroRUT(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := loadClosing(t)
	_, err := pool.Exec(ctx, "UPDATE nomina_empleado_cierre SET rut = '12.345.678-0' WHERE id = 102")
	require.NoError(t, err)
	closing, err := store.GetClosing(ctx, pool, 7)
	require.NoError(t, err)
	_, err = store.ReadChunk(ctx, pool, closing, 101, 103)
	var re *store.RUTError
	require.ErrorAs(t, err, &re)
	require.Equal(t, int64(102), re.RowID)
	require.NotContains(t, err.Error(), "12.345.678", "errors must not carry RUTs")
}

// TestSQLCanonicalRUTMatchesGo checks the database's nomina_rut_canonical, used to
// find novedades and movements through an index, against pkg/rut on every spelling
// of the rut tests and on many generated ones.
func TestSQLCanonicalRUTMatchesGo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	raws := []string{
		"12.345.678-5", "123456785", " 12.345.678 - 5 ", "\t12345678\t-5", "0012.345.678-5", "23.000.000-k",
		"15.000.013-0", "1-9", "999.999.999-6", "12-345-678-5", "", " .-\t", "12.345.678-9", "12345678-K",
		"12A45678-5", "5", "000-0", "1234567890-1", "12345678-5\n", "12,345,678-5", "1K345678-5", "k", "0K",
	}
	for body := uint32(1); body < 40_000_000; body = body*7 + 3 {
		r, err := rut.New(body)
		require.NoError(t, err)
		raws = append(raws, r.String(), r.Dotted(), "0"+r.Dotted(), r.String()[:len(r.String())-1]+"1")
	}
	rows, err := pool.Query(ctx, "SELECT raw, nomina_rut_canonical(raw) FROM unnest($1::text[]) AS raw", raws)
	require.NoError(t, err)
	defer rows.Close()
	n := 0
	for rows.Next() {
		var raw string
		var sqlCanon *string
		require.NoError(t, rows.Scan(&raw, &sqlCanon))
		goCanon, err := rut.Normalize(raw)
		if err != nil {
			require.Nil(t, sqlCanon, "SQL normalizes %q, Go refuses it", raw)
		} else {
			require.NotNil(t, sqlCanon, "Go normalizes %q, SQL refuses it", raw)
			require.Equal(t, goCanon, *sqlCanon, raw)
		}
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(raws), n)
}

func TestCentsRoundTripThroughNumeric(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	for _, c := range []money.Cents{0, 1, -1, 123456, -99, money.MaxNumeric, -money.MaxNumeric} {
		var text string
		var back money.Cents
		require.NoError(t, pool.QueryRow(ctx, "SELECT $1::numeric(12,2)::text, $1::numeric(12,2)", c).Scan(&text, &back))
		require.Equal(t, c.String(), text)
		require.Equal(t, c, back)
	}
	var c money.Cents
	err := pool.QueryRow(ctx, "SELECT 1.005::numeric").Scan(&c)
	require.Error(t, err, "a third decimal must not be rounded away")
	_, err = pool.Exec(ctx, "SELECT $1::numeric(12,2)", money.MaxNumeric+1)
	require.ErrorIs(t, err, money.ErrOutOfRange)
}
