package store_test

import (
	"cmp"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
)

// The rows read back are the records written, field for field and line for line,
// paged in RUT order.
func TestReadStoredRecords(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	written := consolidated(t, pool, 7, 101, 103)
	consolidate(t, pool, [][2]int64{{101, 103}})
	slices.SortFunc(written, func(a, b rules.Consolidated) int { return cmp.Compare(a.RUT, b.RUT) })

	var got []store.StoredRecord
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "paging does not end")
		page, err := store.ReadStoredRecords(t.Context(), pool, 7, after, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].RUT
	}
	require.Len(t, got, len(written))
	for i, w := range written {
		require.NotZero(t, got[i].ID)
		require.Zero(t, got[i].RunID, "written without a run")
		require.Equal(t, w, got[i].Consolidated)
	}

	one, ok, err := store.StoredRecordOf(t.Context(), pool, 7, written[1].RUT)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, got[1], one)

	_, ok, err = store.StoredRecordOf(t.Context(), pool, 8, written[1].RUT)
	require.NoError(t, err)
	require.False(t, ok, "closing 8 has no rows")
}

// TestEveryResultFieldIsStored: a record with every field set (the test fails
// first if rules.Consolidated or rules.ConceptLine gains a field this record does
// not set) is read back as written: a field the column table of results.go does
// not write and read back fails here.
func TestEveryResultFieldIsStored(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	rec := rules.Consolidated{EmpleadoOrigenID: 101, RUT: "12345678-5", NombreCompleto: "Ana Pérez", Cargo: "Analista",
		CentroCosto: "CC-1", EsIngreso: true, EsFiniquito: true, TieneAusentismo: true, TotalHaberes: 150_000_00,
		TotalDescuentos: 20_000_01, LiquidoPagar: 129_999_99, FuentesUtilizadas: []string{"libro", "novedades"},
		ReglasAplicadas: []string{"R1", "R5"}, DiscrepanciasResueltas: 2,
		Lines: []rules.ConceptLine{{Code: "SB", Name: "Sueldo base", Value: 150_000_00, Type: "haber", Source: "novedades"}}}
	requireEveryFieldSet(t, reflect.ValueOf(rec), "rules.Consolidated")
	requireEveryFieldSet(t, reflect.ValueOf(rec.Lines[0]), "rules.ConceptLine")

	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		_, err := store.WriteResults(t.Context(), tx, 7, 0, time.Now(), []rules.Consolidated{rec})
		return err
	})
	require.NoError(t, err)
	got, ok, err := store.StoredRecordOf(t.Context(), pool, 7, rec.RUT)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, rec, got.Consolidated)
}

func requireEveryFieldSet(t *testing.T, v reflect.Value, what string) {
	t.Helper()
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "%s.%s is not set: give it a value here, then store it (results.go)",
			what, v.Type().Field(i).Name)
	}
}

func TestLibroEmployeeOf(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	id, err := store.LibroEmployeeOf(t.Context(), pool, 7, "12345678-5") // stored as 12.345.678-5
	require.NoError(t, err)
	require.EqualValues(t, 101, id)
	id, err = store.LibroEmployeeOf(t.Context(), pool, 8, "12345678-5")
	require.NoError(t, err)
	require.EqualValues(t, 201, id)
	_, err = store.LibroEmployeeOf(t.Context(), pool, 7, "11111111-1")
	require.ErrorIs(t, err, store.ErrNotFound)
}
