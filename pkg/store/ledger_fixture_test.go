package store_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
)

// The ledger tests run on closing 7 of closingSQL (loadClosing), planned as two
// chunks: Ana alone, then Luis and Rosa. Each test has its own database.
var twoChunks = []store.ChunkRange{
	{Index: 0, FirstID: 101, LastID: 101, Employees: 1, Weight: 1},
	{Index: 1, FirstID: 102, LastID: 103, Employees: 2, Weight: 2},
}

// What chunk 0 (Ana: 1 employee row and 5 concept rows) and chunk 1 (Luis and Rosa:
// 2 employee rows and 2 + 2 concept rows) write, by hand, in cents.
var (
	chunk0Sum = store.WriteSummary{Employees: 1, Records: 6,
		TotalHaberes: 122000075, TotalDescuentos: 11000000, LiquidoPagar: 111000075}
	chunk1Sum = store.WriteSummary{Employees: 2, Records: 6,
		TotalHaberes: 50000000 + 80000001, TotalDescuentos: 60000000 + 5600001, LiquidoPagar: -10000000 + 74400000}
)

// testStats is what the tests' workers report of a chunk.
var testStats = store.ChunkStats{Worker: "worker-a", DurationSeconds: 2, CPUSeconds: 1, PeakRSSBytes: 64 << 20}

// runOf is a full run of a closing from its present estado.
func runOf(closingID int64, from domain.Estado, chunks []store.ChunkRange) store.NewRun {
	employees := 0
	for _, c := range chunks {
		employees += c.Employees
	}
	return store.NewRun{
		ClosingID: closingID, Mode: domain.ModeFull, Policy: domain.PolicySeed, ChunkSize: 2,
		PreviousEstado: from, Deadline: time.Now().Add(time.Hour).Truncate(time.Microsecond),
		UnmatchedNovedades: 1, TotalEmployees: employees, Chunks: chunks,
	}
}

// newLedger is a fresh database with closing 7 loaded and a run of it started,
// planned as twoChunks.
func newLedger(t *testing.T) (*pgxpool.Pool, int64) {
	t.Helper()
	pool := loadClosing(t)
	return pool, newRun(t, pool, twoChunks)
}

// newRun starts a full run of closing 7 with the given plan and returns its id.
func newRun(t *testing.T, pool *pgxpool.Pool, chunks []store.ChunkRange) int64 {
	t.Helper()
	return newRunOf(t, pool, 7, chunks)
}

// newRunOf starts a full run of a closing from its present estado.
func newRunOf(t *testing.T, pool *pgxpool.Pool, closingID int64, chunks []store.ChunkRange) int64 {
	t.Helper()
	runID, err := store.StartRun(t.Context(), pool, runOf(closingID, estadoOf(t, pool, closingID), chunks))
	require.NoError(t, err)
	return runID
}

// noLease is the lease epoch of a run no replica has acquired: the ledger tests
// that are not about leases dispatch and finish with it.
const noLease = 0

var lastToken atomic.Int64

// newToken is a fresh attempt token.
func newToken() int64 { return lastToken.Add(1) }

// dispatch hands a chunk to a new attempt of worker-a and returns its token.
func dispatch(t *testing.T, pool *pgxpool.Pool, runID int64, index int) int64 {
	t.Helper()
	token := newToken()
	_, ok, err := store.DispatchChunk(t.Context(), pool, runID, noLease, index, token, "worker-a")
	require.NoError(t, err)
	require.True(t, ok, "dispatch of chunk %d refused", index)
	return token
}

// commitChunk consolidates a chunk's employees and commits them with token.
func commitChunk(t *testing.T, pool *pgxpool.Pool, runID int64, index int, token int64) (store.WriteSummary, bool, error) {
	t.Helper()
	run, err := store.GetRun(t.Context(), pool, runID)
	require.NoError(t, err)
	c, err := store.GetChunk(t.Context(), pool, runID, index)
	require.NoError(t, err)
	recs := consolidated(t, pool, run.ClosingID, c.FirstID, c.LastID)
	return store.CommitChunk(t.Context(), pool, runID, index, token, run.ClosingID, recs, testStats, nil)
}

// dispatchAndCommit dispatches a chunk and commits it, and requires both to succeed.
func dispatchAndCommit(t *testing.T, pool *pgxpool.Pool, runID int64, index int) store.WriteSummary {
	t.Helper()
	sum, fromLedger, err := commitChunk(t, pool, runID, index, dispatch(t, pool, runID, index))
	require.NoError(t, err)
	require.False(t, fromLedger)
	return sum
}

// consolidated is what rules.Consolidate makes of a closing's libro employees with
// ids in [first, last].
func consolidated(t *testing.T, pool *pgxpool.Pool, closingID, first, last int64) []rules.Consolidated {
	t.Helper()
	closing, err := store.GetClosing(t.Context(), pool, closingID)
	require.NoError(t, err)
	src, err := store.ReadChunk(t.Context(), pool, closing, first, last)
	require.NoError(t, err)
	recs := make([]rules.Consolidated, 0, len(src.Employees))
	for _, s := range src.Employees {
		rec, err := rules.Consolidate(s, src.Month)
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	return recs
}

// finish ends a run with estado, keeping or removing its rows, as an interrupted
// end (so whatever chunk is still open is failed with it), and requires that it
// was this call that ended it.
func finish(t *testing.T, pool *pgxpool.Pool, runID int64, estado domain.Estado, removeRows bool) {
	t.Helper()
	finished, err := store.FinishRun(t.Context(), pool, runID, noLease,
		store.RunEnd{Estado: estado, RemoveRows: removeRows, Interrupted: true})
	require.NoError(t, err)
	require.True(t, finished)
}

func chunkOf(t *testing.T, pool *pgxpool.Pool, runID int64, index int) store.Chunk {
	t.Helper()
	c, err := store.GetChunk(t.Context(), pool, runID, index)
	require.NoError(t, err)
	return c
}

// tokenOf is a chunk's current attempt token, 0 when it has none.
func tokenOf(t *testing.T, pool *pgxpool.Pool, runID int64, index int) int64 {
	t.Helper()
	a, err := store.GetAssignment(t.Context(), pool, runID, index)
	require.NoError(t, err)
	return a.Token
}

func estadoOf(t *testing.T, pool *pgxpool.Pool, closingID int64) domain.Estado {
	t.Helper()
	c, err := store.GetClosing(t.Context(), pool, closingID)
	require.NoError(t, err)
	return c.Estado
}

func getRun(t *testing.T, pool *pgxpool.Pool, runID int64) store.Run {
	t.Helper()
	r, err := store.GetRun(t.Context(), pool, runID)
	require.NoError(t, err)
	return r
}

// attemptRow is a row of consolidation_chunk_attempt.
type attemptRow struct {
	Attempt       int
	Token         int64
	Worker        string
	Finished      bool
	Outcome       string
	Error         string
	CommitRefused bool
}

func attemptsOf(t *testing.T, pool *pgxpool.Pool, runID int64, index int) []attemptRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT attempt, attempt_token, coalesce(worker, ''), finished_at IS NOT NULL, coalesce(outcome, ''),
		       coalesce(error, ''), commit_refused_at IS NOT NULL
		FROM consolidation_chunk_attempt WHERE run_id = $1 AND chunk_index = $2 ORDER BY attempt`, runID, index)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[attemptRow])
	require.NoError(t, err)
	return out
}

// requireRowsOfRun checks how many consolidated employee rows, and concept rows
// with them, a run has in the result tables.
func requireRowsOfRun(t *testing.T, pool *pgxpool.Pool, runID int64, employees, concepts int) {
	t.Helper()
	var e, c int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT count(DISTINCT e.id), count(c.id)
		FROM nomina_empleado_consolidado e LEFT JOIN nomina_concepto_empleado_consolidado c ON c.empleado_consolidado_id = e.id
		WHERE e.consolidation_run_id = $1`, runID).Scan(&e, &c))
	require.Equal(t, employees, e, "employee rows of run %d", runID)
	require.Equal(t, concepts, c, "concept rows of run %d", runID)
}

// countRows counts the rows of a query's single count(*) column.
func countRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), sql, args...).Scan(&n))
	return n
}

// writeWithoutRun writes the consolidated rows of a closing's libro employees with
// ids in [first, last] as no run's (consolidation_run_id NULL), as rows written
// before the service kept run ids are.
func writeWithoutRun(t *testing.T, pool *pgxpool.Pool, closingID, first, last int64) {
	t.Helper()
	recs := consolidated(t, pool, closingID, first, last)
	require.NotEmpty(t, recs)
	require.NoError(t, pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		_, err := store.WriteResults(t.Context(), tx, closingID, 0, time.Now(), recs)
		return err
	}))
}
