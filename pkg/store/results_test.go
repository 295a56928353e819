package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/schema"
)

// TestCopyColumnsAreTheTablesColumns checks the column tables against the migrated
// schema: each COPY names its table's columns in the table's order, leaving out
// only the concept rows' identity id.
func TestCopyColumnsAreTheTablesColumns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	tableColumns := func(table string) []string {
		rows, err := pool.Query(ctx, `
			SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.NotEmpty(t, names, "columns of %s", table)
		return names
	}

	employees := tableColumns("nomina_empleado_consolidado")
	require.Equal(t, "COPY nomina_empleado_consolidado ("+strings.Join(employees, ", ")+") FROM STDIN (FORMAT binary)",
		sqlCopyEmployees)

	concepts := tableColumns("nomina_concepto_empleado_consolidado")
	require.Equal(t, "id", concepts[0])
	require.Equal(t, "COPY nomina_concepto_empleado_consolidado ("+strings.Join(concepts[1:], ", ")+") FROM STDIN (FORMAT binary)",
		sqlCopyConcepts)
}

// TestResultColumnsAreRequiredColumns: the columns the result tables' column
// tables write are exactly the columns pkg/schema requires of those tables (the
// check a database must pass before the service serves): a column added to one
// and not the other fails here.
func TestResultColumnsAreRequiredColumns(t *testing.T) {
	t.Parallel()
	required := func(table string) []string {
		var names []string
		for _, c := range schema.RequiredColumns {
			if c.Table == table {
				require.True(t, c.Written, "%s.%s is written", table, c.Column)
				names = append(names, c.Column)
			}
		}
		slices.Sort(names)
		return names
	}
	written := func(list string, extra ...string) []string {
		names := append(strings.Split(list, ", "), extra...)
		slices.Sort(names)
		return names
	}
	require.Equal(t, required("nomina_empleado_consolidado"), written(columnList(employeeColumns)))
	require.Equal(t, required("nomina_concepto_empleado_consolidado"), written(columnList(conceptColumns), "id"),
		"every column but the identity id, which the service reads (its foreign key) and never writes")
}

// TestCopyColumnsWriteOneValueEach encodes each column alone and checks that it
// wrote exactly one value: a length and that many bytes, or a NULL.
func TestCopyColumnsWriteOneValueEach(t *testing.T) {
	t.Parallel()
	ids, recs := benchChunk(1)
	at := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	for _, runID := range []int64{0, 42} {
		row := employeeRow{id: ids[0], closingID: 7, runID: runID, at: at, rec: &recs[0],
			fuentes: []byte(`["libro"]`), reglas: []byte(`["R1"]`)}
		for _, col := range employeeColumns {
			requireOneValue(t, col.name, col.encode(nil, &row))
		}
	}
	row := conceptRow{employeeID: ids[0], line: &recs[0].Lines[0]}
	for _, col := range conceptColumns {
		requireOneValue(t, col.name, col.encode(nil, &row))
	}
}

func requireOneValue(t *testing.T, column string, value copyBinary) {
	t.Helper()
	require.GreaterOrEqual(t, len(value), 4, "column %s", column)
	n := binary.BigEndian.Uint32(value)
	if n == math.MaxUint32 {
		require.Len(t, value, 4, "column %s: NULL", column)
		return
	}
	require.Len(t, value, 4+int(n), "column %s", column)
}

// benchChunk is a chunk of n consolidated employees with 24 concept lines each,
// the shape of a generated closing.
func benchChunk(n int) ([]int64, []rules.Consolidated) {
	ids := make([]int64, n)
	recs := make([]rules.Consolidated, n)
	for i := range recs {
		ids[i] = int64(1_000_000 + i)
		r := rules.Consolidated{
			EmpleadoOrigenID:       int64(100 + i),
			RUT:                    fmt.Sprintf("%d-%d", 12_000_000+i, i%10),
			NombreCompleto:         "María José Pérez Soto",
			Cargo:                  "Analista de remuneraciones",
			CentroCosto:            "CC-0420",
			EsIngreso:              i%7 == 0,
			TieneAusentismo:        i%5 == 0,
			FuentesUtilizadas:      []string{"libro", "novedades"},
			ReglasAplicadas:        []string{"R1", "R4.sum", "R5"},
			DiscrepanciasResueltas: i % 3,
		}
		for j := range 24 {
			v := money.Cents(1_234_567 * (j + 1))
			typ := "haber"
			if j >= 12 {
				typ = "descuento"
				r.TotalDescuentos += v
			} else {
				r.TotalHaberes += v
			}
			r.Lines = append(r.Lines, rules.ConceptLine{
				Code: fmt.Sprintf("C%02d", j), Name: "Concepto de prueba", Value: v, Type: typ, Source: "libro",
			})
		}
		r.LiquidoPagar = r.TotalHaberes - r.TotalDescuentos
		recs[i] = r
	}
	return ids, recs
}

// BenchmarkEncodeChunk measures building both COPY bodies of a 1000-employee chunk.
func BenchmarkEncodeChunk(b *testing.B) {
	ids, recs := benchChunk(1000)
	lines := 24 * len(recs)
	at := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeEmployees(7, 42, at, ids, recs); err != nil {
			b.Fatal(err)
		}
		if _, err := encodeConcepts(ids, recs, lines); err != nil {
			b.Fatal(err)
		}
	}
}
