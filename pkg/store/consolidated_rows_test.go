package store_test

import (
	"cmp"
	"slices"
	"testing"

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
