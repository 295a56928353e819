package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// TestListRuns: five runs, of closings 7 and 8, at known start times; the list is
// newest first, filtered, and its pages meet without a gap or a repeat, ties in
// started_at broken by id.
func TestListRuns(t *testing.T) {
	t.Parallel()
	pool := loadClosing(t)
	base := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	type spec struct {
		closing int64
		estado  domain.Estado
		at      time.Time
	}
	specs := []spec{
		{7, domain.EstadoError, base},
		{8, domain.EstadoCancelada, base.Add(time.Hour)},
		{7, domain.EstadoCancelada, base.Add(2 * time.Hour)},
		{8, domain.EstadoError, base.Add(2 * time.Hour)}, // same time as the one before: id decides
		{7, "", base.Add(3 * time.Hour)},                 // still running
	}
	ids := make([]int64, len(specs))
	for i, s := range specs {
		ids[i] = newRunOf(t, pool, s.closing, twoChunks)
		if s.estado != "" {
			finish(t, pool, ids[i], s.estado, true)
		}
		_, err := pool.Exec(t.Context(), "UPDATE consolidation_run SET started_at = $2 WHERE id = $1", ids[i], s.at)
		require.NoError(t, err)
	}

	list := func(f store.RunFilter, after store.RunCursor, limit int) []int64 {
		runs, err := store.ListRuns(t.Context(), pool, f, after, limit)
		require.NoError(t, err)
		var out []int64
		for _, r := range runs {
			out = append(out, r.ID)
		}
		return out
	}
	newestFirst := []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}
	require.Equal(t, newestFirst, list(store.RunFilter{}, store.RunCursor{}, 10))
	require.Equal(t, []int64{ids[4], ids[2], ids[0]}, list(store.RunFilter{ClosingID: 7}, store.RunCursor{}, 10))
	require.Equal(t, []int64{ids[3], ids[0]}, list(store.RunFilter{Estado: domain.EstadoError}, store.RunCursor{}, 10))
	require.Equal(t, []int64{ids[3], ids[2], ids[1]},
		list(store.RunFilter{StartedAfter: base.Add(time.Hour), StartedBefore: base.Add(3 * time.Hour)}, store.RunCursor{}, 10))
	require.Equal(t, []int64{ids[2]}, list(store.RunFilter{ClosingID: 7, Estado: domain.EstadoCancelada}, store.RunCursor{}, 10))

	// Pages of two, each after the last run of the previous one.
	var paged []int64
	after := store.RunCursor{}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 4, "paging does not end")
		runs, err := store.ListRuns(t.Context(), pool, store.RunFilter{}, after, 2)
		require.NoError(t, err)
		if len(runs) == 0 {
			break
		}
		for _, r := range runs {
			paged = append(paged, r.ID)
		}
		last := runs[len(runs)-1]
		after = store.RunCursor{StartedAt: last.StartedAt, ID: last.ID}
	}
	require.Equal(t, newestFirst, paged)

	// A listed run is the run GetRun reads.
	runs, err := store.ListRuns(t.Context(), pool, store.RunFilter{ClosingID: 8, Estado: domain.EstadoCancelada}, store.RunCursor{}, 1)
	require.NoError(t, err)
	require.Equal(t, []store.Run{getRun(t, pool, ids[1])}, runs)
	requireUsesIndex(t, pool)
}

// requireUsesIndex: the unfiltered first page reads the run-history index, not a
// sort of the whole table.
func requireUsesIndex(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var plan []string
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), "SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(t.Context(), `EXPLAIN (FORMAT text)
			SELECT id FROM consolidation_run r ORDER BY r.started_at DESC, r.id DESC LIMIT 50`)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	require.NoError(t, err)
	require.Contains(t, strings.Join(plan, "\n"), "consolidation_run_started_idx")
}
