package store_test

import (
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/synth"
)

// A session that committed a chunk while the result tables were nearly empty (and
// analyzed empty, as a database vacuumed before its first closing) keeps the plans
// it made then: the foreign-key check of each concept row, planned as a scan of
// the employee rows, scanned the whole growing table once per concept row
// (docs/benchmarks.md, "Plans made on empty tables"). CommitChunk plans afresh
// each chunk, so once the table has grown past a few pages the checks are index
// lookups. Counted with pg_stat_user_tables.seq_scan: no clock involved.
func TestCommitChunkPlansOnTheResultsAsTheyAre(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const employees, size = 1200, 100
	dbURL, closingID, ids := plansFixture(t, employees, 24)
	pool := pgtest.OpenPool(t, oneSession(t, dbURL))
	chunks := chunkRanges(ids, 0, size)
	runID := newRunOf(t, pool, closingID, chunks)

	// seqScans flushes the session's statistics (at its next idle moment, before
	// it answers) and reads how many scans of the employee rows it started.
	seqScans := func() int64 {
		t.Helper()
		_, err := pool.Exec(ctx, "SELECT pg_stat_force_next_flush()")
		require.NoError(t, err)
		var n int64
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'nomina_empleado_consolidado'").Scan(&n))
		return n
	}
	half := len(chunks) / 2
	for i := range half {
		dispatchAndCommit(t, pool, runID, i)
	}
	before := seqScans()
	var concepts int64
	for i := half; i < len(chunks); i++ {
		sum := dispatchAndCommit(t, pool, runID, i)
		concepts += int64(sum.Records - sum.Employees)
	}
	require.Positive(t, concepts)
	require.Zero(t, seqScans()-before,
		"scans of the employee rows while committing %d concept rows over %d employee rows already written", concepts, half*size)
}

// plansFixture is a new database holding a generated closing of employees, its
// result tables analyzed empty (as a database vacuumed before its first closing
// has them) and left alone by autovacuum: its URL, the closing and its
// employees' ids in order.
func plansFixture(t *testing.T, employees int, seed uint64) (dbURL string, closingID int64, ids []int64) {
	t.Helper()
	ctx := t.Context()
	dbURL = pgtest.NewDatabase(t)
	pool := pgtest.OpenPool(t, dbURL)
	gen, err := synth.Generate(ctx, pool, synth.Config{Employees: employees, Seed: seed})
	require.NoError(t, err)
	// No autovacuum on the result tables: its analyze would drop the plans a
	// session kept, and a test of kept plans would pass whether or not the code
	// discards them.
	for _, table := range []string{"nomina_empleado_consolidado", "nomina_concepto_empleado_consolidado"} {
		_, err = pool.Exec(ctx, "ALTER TABLE "+table+" SET (autovacuum_enabled = off)")
		require.NoError(t, err)
	}
	_, err = pool.Exec(ctx, "VACUUM (ANALYZE) nomina_empleado_consolidado, nomina_concepto_empleado_consolidado")
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "SELECT id FROM nomina_empleado_cierre WHERE cierre_id = $1 ORDER BY id", gen.ClosingID)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Len(t, ids, employees)
	return dbURL, gen.ClosingID, ids
}

// oneSession is dbURL for a pool of one session: the one that keeps its plans.
func oneSession(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	return u.String()
}

// chunkRanges plans ids as a first chunk of first employees (none when 0), then
// chunks of size.
func chunkRanges(ids []int64, first, size int) []store.ChunkRange {
	var chunks []store.ChunkRange
	for i := 0; i < len(ids); {
		n := size
		if i == 0 && first > 0 {
			n = first
		}
		last := min(i+n, len(ids)) - 1
		chunks = append(chunks, store.ChunkRange{Index: len(chunks), FirstID: ids[i], LastID: ids[last],
			Employees: last - i + 1, Weight: float64(last - i + 1)})
		i = last + 1
	}
	return chunks
}
