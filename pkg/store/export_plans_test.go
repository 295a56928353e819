package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/store"
)

// The export reads a closing a page at a time on the coordinator's long-lived
// read sessions. A session that exported small closings while the result
// tables held a page or two kept a generic plan made then: read each page's
// concept rows with a scan of the whole concept table (and its employees with a
// scan of the employee table), once a page, until the next analyze: for the 121
// pages below, 121 scans of the concept table and 122 of the employee table
// before the fix. Each page plans afresh now, on the rows as they are (docs/benchmarks.md, "The same kept
// plan on the coordinator's side"). Counted with pg_stat_user_tables: no clock.
func TestExportPlansOnTheRowsAsTheyAre(t *testing.T) {
	t.Parallel()
	// A page is 0.8 % of the closing, as the export's 500 employees are 0.5 % of
	// a 100,000-employee one: the index is the plan for it (a page of a quarter
	// of the closing is rightly read with a scan).
	const employees, page = 1202, 10
	reader, pool, closingID, ids := coordinatorAndWorkers(t, employees, 27)
	// Two employees committed, exported a page of one at a time more than five
	// times (PostgreSQL then keeps a generic plan), then the rest.
	chunks := chunkRanges(ids, 2, 100)
	runID := newRunOf(t, pool, closingID, chunks)
	dispatchAndCommit(t, pool, runID, 0)
	for range 5 {
		require.Len(t, exportAll(t, reader, closingID, 1), 2)
	}
	requireGenericPlan(t, reader, "%WHERE empleado_consolidado_id = ANY%")
	requireGenericPlan(t, reader, "%WHERE cierre_id = $1 AND rut > $2%")
	for i := 1; i < len(chunks); i++ {
		dispatchAndCommit(t, pool, runID, i)
	}
	c0, ci0 := tableScans(t, "nomina_concepto_empleado_consolidado", pool, reader)
	e0, _ := tableScans(t, "nomina_empleado_consolidado", pool, reader)
	recs := exportAll(t, reader, closingID, page)
	c1, ci1 := tableScans(t, "nomina_concepto_empleado_consolidado", pool, reader)
	e1, _ := tableScans(t, "nomina_empleado_consolidado", pool, reader)
	require.Len(t, recs, employees)
	for _, r := range recs {
		require.NotEmpty(t, r.Lines, "an exported employee without its concept rows")
	}
	require.Zero(t, c1-c0, "scans of the whole concept table in an export of %d employees, %d a page", employees, page)
	require.Zero(t, e1-e0, "scans of the whole employee table in an export of %d employees, %d a page", employees, page)
	require.Positive(t, ci1-ci0, "the concept rows were not read through the index")
}

// exportAll reads a closing's consolidated rows as the export does, page by page.
func exportAll(t *testing.T, reader store.Querier, closingID int64, page int) []store.StoredRecord {
	t.Helper()
	var all []store.StoredRecord
	after := ""
	for {
		recs, err := store.ReadStoredRecords(t.Context(), reader, closingID, after, page)
		require.NoError(t, err)
		if len(recs) == 0 {
			return all
		}
		all = append(all, recs...)
		after = recs[len(recs)-1].RUT
	}
}
