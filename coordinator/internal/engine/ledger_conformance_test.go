package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/engine/ledgertest"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/synth"
)

// The ledger's conformance suite (docs/architecture.md, "The ledger seam"): the
// same cases run against the PostgreSQL ledger (pgStore over pkg/store) and the
// in-memory one the drive loop's tests use (ledgertest.Ledger), so the fake
// cannot drift from what the engine really meets.

var _ ledger = (*ledgertest.Ledger)(nil)

// conformanceTTL is long enough that no lease expires on its own during a case:
// expiry comes only from expire.
const conformanceTTL = time.Minute

// ledgerUnderTest is one ledger with what a case needs around it.
type ledgerUnderTest struct {
	ledger
	// start starts a run of a closing of ten employees, planned as chunks of the
	// given sizes (in libro id order).
	start func(t *testing.T, sizes ...int) int64
	// commit is a worker's commit of chunk index with token.
	commit func(t *testing.T, runID int64, index int, token int64) (fromLedger bool, err error)
	// expire makes the run's lease and its claim on the steps after its end expire.
	expire func(t *testing.T, runID int64)
	// closingEstado is the estado of the run's closing.
	closingEstado func(t *testing.T, runID int64) domain.Estado
}

// planOf plans chunks of the given sizes over libro ids, in order.
func planOf(ids []int64, sizes ...int) []store.ChunkRange {
	var plan []store.ChunkRange
	at := 0
	for i, n := range sizes {
		plan = append(plan, store.ChunkRange{Index: i, FirstID: ids[at], LastID: ids[at+n-1], Employees: n, Weight: float64(n)})
		at += n
	}
	return plan
}

func newRunOfPlan(closingID int64, from domain.Estado, plan []store.ChunkRange) store.NewRun {
	n := 0
	for _, c := range plan {
		n += c.Employees
	}
	return store.NewRun{ClosingID: closingID, Mode: domain.ModeFull, Policy: domain.PolicySeed, ChunkSize: 5,
		PreviousEstado: from, Deadline: time.Now().Add(time.Hour), TotalEmployees: n, Chunks: plan}
}

func memLedgerUnderTest(t *testing.T) ledgerUnderTest {
	clock := ledgertest.NewClock(time.Now())
	l := ledgertest.New(clock)
	closingOf := map[int64]int64{}
	return ledgerUnderTest{
		ledger: l,
		start: func(t *testing.T, sizes ...int) int64 {
			ids := make([]int64, 10)
			for i := range ids {
				ids[i] = int64(101 + 3*i) // gaps, as libro ids have
			}
			closingID := l.AddClosing(domain.EstadoVerificado, ids)
			runID, err := l.StartRun(t.Context(), newRunOfPlan(closingID, domain.EstadoVerificado, planOf(ids, sizes...)))
			require.NoError(t, err)
			closingOf[runID] = closingID
			return runID
		},
		commit: func(t *testing.T, runID int64, index int, token int64) (bool, error) {
			return l.CommitChunk(t.Context(), runID, index, token, "worker-a")
		},
		expire: func(*testing.T, int64) { clock.Advance(conformanceTTL + time.Second) },
		closingEstado: func(_ *testing.T, runID int64) domain.Estado {
			return l.ClosingEstado(closingOf[runID])
		},
	}
}

func pgLedgerUnderTest(t *testing.T) ledgerUnderTest {
	pool := pgtest.NewPool(t)
	return ledgerUnderTest{
		ledger: pgStore{pool: pool},
		start: func(t *testing.T, sizes ...int) int64 {
			ctx := t.Context()
			sum, err := synth.Generate(ctx, pool, synth.Config{Employees: 10, Seed: 5})
			require.NoError(t, err)
			var from domain.Estado
			require.NoError(t, pool.QueryRow(ctx, "SELECT estado FROM nomina_cierrenomina WHERE id = $1", sum.ClosingID).Scan(&from))
			rows, err := pool.Query(ctx, "SELECT id FROM nomina_empleado_cierre WHERE cierre_id = $1 ORDER BY id", sum.ClosingID)
			require.NoError(t, err)
			var ids []int64
			for rows.Next() {
				var id int64
				require.NoError(t, rows.Scan(&id))
				ids = append(ids, id)
			}
			require.NoError(t, rows.Err())
			runID, err := store.StartRun(ctx, pool, newRunOfPlan(sum.ClosingID, from, planOf(ids, sizes...)))
			require.NoError(t, err)
			return runID
		},
		commit: func(t *testing.T, runID int64, index int, token int64) (bool, error) {
			return consolidateAndCommit(t.Context(), pool, runID, index, token, "worker-a")
		},
		expire: func(t *testing.T, runID int64) {
			_, err := pool.Exec(t.Context(), `UPDATE consolidation_run SET lease_expires_at = now() - interval '1 second',
				after_end_claimed_until = CASE WHEN after_end_claimed_until IS NULL THEN NULL ELSE now() - interval '1 second' END
				WHERE id = $1`, runID)
			require.NoError(t, err)
		},
		closingEstado: func(t *testing.T, runID int64) domain.Estado {
			var e domain.Estado
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT k.estado FROM nomina_cierrenomina k
				JOIN consolidation_run r ON r.cierre_id = k.id WHERE r.id = $1`, runID).Scan(&e))
			return e
		},
	}
}

// consolidateAndCommit is a worker's work on a chunk, in the test: its
// assignment, its sources, the rules, and the commit fenced by token.
func consolidateAndCommit(ctx context.Context, pool *pgxpool.Pool, runID int64, index int, token int64, worker string) (bool, error) {
	a, err := store.GetAssignment(ctx, pool, runID, index)
	if err != nil {
		return false, err
	}
	src, err := store.ReadChunk(ctx, pool, a.Closing, a.Chunk.FirstID, a.Chunk.LastID)
	if err != nil {
		return false, err
	}
	recs := make([]rules.Consolidated, 0, len(src.Employees))
	for _, e := range src.Employees {
		rec, err := rules.Consolidate(e, src.Month)
		if err != nil {
			return false, err
		}
		recs = append(recs, rec)
	}
	_, fromLedger, err := store.CommitChunk(ctx, pool, runID, index, token, a.Closing.ID, recs,
		store.ChunkStats{Worker: worker}, nil)
	return fromLedger, err
}

// conformanceCase is one case, run on each ledger.
type conformanceCase struct {
	name string
	run  func(t *testing.T, l ledgerUnderTest)
}

func dispatchParams(runID, epoch int64, index int, token int64) store.DispatchChunkParams {
	return store.DispatchChunkParams{RunLease: store.RunLease{RunID: runID, Epoch: epoch}, Index: index, Token: token, Worker: "worker-a"}
}

// acquire takes the run's lease for owner, which must succeed.
func acquire(t *testing.T, l ledgerUnderTest, runID int64, owner string) int64 {
	t.Helper()
	epoch, ok, err := l.AcquireLease(t.Context(), runID, owner, conformanceTTL)
	require.NoError(t, err)
	require.True(t, ok, "%s could not take the lease", owner)
	return epoch
}

// dispatchTo hands chunk index to token under epoch, which must succeed.
func dispatchTo(t *testing.T, l ledgerUnderTest, runID, epoch int64, index int, token int64) int {
	t.Helper()
	attempt, ok, err := l.DispatchChunk(t.Context(), dispatchParams(runID, epoch, index, token))
	require.NoError(t, err)
	require.True(t, ok)
	return attempt
}

func chunkStatus(t *testing.T, l ledgerUnderTest, runID int64, index int) store.Chunk {
	t.Helper()
	c, err := l.GetChunk(t.Context(), runID, index)
	require.NoError(t, err)
	return c
}

var conformanceCases = []conformanceCase{
	{"lease epochs fence and expire", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 5, 5)
		a1 := acquire(t, l, runID, "a")
		_, ok, err := l.AcquireLease(ctx, runID, "b", conformanceTTL)
		require.NoError(t, err)
		require.False(t, ok, "a live lease is not taken")
		a2 := acquire(t, l, runID, "a")
		require.Equal(t, a1+1, a2, "the holder's re-acquisition moves the epoch on")
		l.expire(t, runID)
		b := acquire(t, l, runID, "b")
		require.Equal(t, a2+1, b)
		_, err = l.RenewLease(ctx, store.RunLease{RunID: runID, Epoch: a2}, conformanceTTL)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		s, err := l.RenewLease(ctx, store.RunLease{RunID: runID, Epoch: b}, conformanceTTL)
		require.NoError(t, err)
		require.False(t, s.CancelRequested)
		released, err := l.ReleaseLease(ctx, store.RunLease{RunID: runID, Epoch: a2})
		require.NoError(t, err)
		require.False(t, released, "an earlier epoch releases nothing")
		released, err = l.ReleaseLease(ctx, store.RunLease{RunID: runID, Epoch: b})
		require.NoError(t, err)
		require.True(t, released)
		require.Equal(t, b+1, acquire(t, l, runID, "c"), "a released lease is taken at once")
	}},
	{"dispatch is fenced by the epoch and commits by the token", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 5, 5)
		old := acquire(t, l, runID, "a")
		l.expire(t, runID)
		epoch := acquire(t, l, runID, "b")
		_, _, err := l.DispatchChunk(ctx, dispatchParams(runID, old, 0, 11))
		require.ErrorIs(t, err, store.ErrLeaseLost)
		require.Equal(t, domain.ChunkPending, chunkStatus(t, l, runID, 0).Status, "a fenced dispatch changes nothing")
		require.Equal(t, 1, dispatchTo(t, l, runID, epoch, 0, 11))
		require.Equal(t, 2, dispatchTo(t, l, runID, epoch, 0, 12))
		_, err = l.commit(t, runID, 0, 11)
		require.ErrorIs(t, err, store.ErrStaleAttempt, "a superseded attempt cannot commit")
		fromLedger, err := l.commit(t, runID, 0, 12)
		require.NoError(t, err)
		require.False(t, fromLedger)
		fromLedger, err = l.commit(t, runID, 0, 12)
		require.NoError(t, err)
		require.True(t, fromLedger, "the same attempt committing again finds its commit")
		c := chunkStatus(t, l, runID, 0)
		require.Equal(t, domain.ChunkSucceeded, c.Status)
		require.Equal(t, 2, c.Attempts)
		require.Equal(t, 5, c.Employees)
		_, ok, err := l.DispatchChunk(ctx, dispatchParams(runID, epoch, 0, 13))
		require.NoError(t, err)
		require.False(t, ok, "a succeeded chunk is not dispatched again")
		run, err := l.GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, 1, run.ChunksSucceeded)
		require.Equal(t, 5, run.EmployeesDone)
		totals, err := controlTotals(ctx, l, runID)
		require.NoError(t, err)
		require.True(t, totals.Agree(), "%+v", totals)
		require.Equal(t, 5, totals.Ledger.Employees)
	}},
	{"split replaces a running chunk by its halves", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 5, 4, 1)
		epoch := acquire(t, l, runID, "a")
		dispatchTo(t, l, runID, epoch, 0, 21)
		split := func(index int, token, epoch int64) ([]store.Chunk, bool, error) {
			return l.SplitChunk(ctx, store.SplitChunkParams{RunLease: store.RunLease{RunID: runID, Epoch: epoch},
				Index: index, Token: token, Reason: "bad data", WorkerDied: false})
		}
		_, ok, err := split(0, 99, epoch)
		require.NoError(t, err)
		require.False(t, ok, "a token that is not current splits nothing")
		_, _, err = split(0, 21, epoch+1)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		halves, ok, err := split(0, 21, epoch)
		require.NoError(t, err)
		require.True(t, ok)
		require.Len(t, halves, 2)
		parent := chunkStatus(t, l, runID, 0)
		require.Equal(t, domain.ChunkSplit, parent.Status)
		require.Equal(t, "bad data", parent.Error)
		for i, want := range []struct{ index, employees int }{{3, 2}, {4, 3}} {
			h := chunkStatus(t, l, runID, want.index)
			require.Equal(t, halves[i].Index, h.Index)
			require.Equal(t, want.employees, h.Employees)
			require.Equal(t, domain.ChunkPending, h.Status)
			require.True(t, h.Split)
			require.Equal(t, 0, h.ParentIndex)
		}
		require.Equal(t, parent.FirstID, halves[0].FirstID)
		require.Equal(t, parent.LastID, halves[1].LastID)
		require.Less(t, halves[0].LastID, halves[1].FirstID)
		run, err := l.GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, 5, run.TotalChunks)
		require.Equal(t, 1, run.ChunksSplit)
		_, err = l.commit(t, runID, 0, 21)
		require.ErrorIs(t, err, store.ErrStaleAttempt, "the split chunk's attempt cannot commit")
		dispatchTo(t, l, runID, epoch, 2, 22)
		_, _, err = split(2, 22, epoch)
		require.ErrorIs(t, err, store.ErrNotSplittable)
		require.Equal(t, domain.ChunkRunning, chunkStatus(t, l, runID, 2).Status)
	}},
	{"fail is fenced by the token and names the employees", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 2, 8)
		epoch := acquire(t, l, runID, "a")
		dispatchTo(t, l, runID, epoch, 0, 31)
		fail := func(token int64) (bool, error) {
			return l.FailChunk(ctx, store.FailChunkParams{RunLease: store.RunLease{RunID: runID, Epoch: epoch},
				Index: 0, Token: token, Failure: store.ChunkFailure{Error: "died", WorkerDied: true}})
		}
		failed, err := fail(99)
		require.NoError(t, err)
		require.False(t, failed)
		failed, err = fail(31)
		require.NoError(t, err)
		require.True(t, failed)
		c := chunkStatus(t, l, runID, 0)
		require.Equal(t, domain.ChunkFailed, c.Status)
		require.True(t, c.WorkerDied)
		run, err := l.GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, 2, run.EmployeesFailed)
		require.Equal(t, 2, run.EmployeesWorkerDied)
		killers, err := l.FailedEmployees(ctx, runID, 10, true)
		require.NoError(t, err)
		require.Len(t, killers, 2)
		require.Equal(t, c.FirstID, killers[0].EmployeeID)
		require.Equal(t, c.LastID, killers[1].EmployeeID)
		require.Equal(t, 0, killers[1].ChunkIndex)
		_, err = l.commit(t, runID, 0, 31)
		require.ErrorIs(t, err, store.ErrStaleAttempt, "a failed chunk's attempt cannot commit")
	}},
	{"a cancel revokes tokens and ends the run only interrupted", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 5, 5)
		epoch := acquire(t, l, runID, "a")
		lease := store.RunLease{RunID: runID, Epoch: epoch}
		dispatchTo(t, l, runID, epoch, 0, 41)
		dispatchTo(t, l, runID, epoch, 1, 42)
		_, err := l.commit(t, runID, 1, 42)
		require.NoError(t, err)
		cancelling, err := l.RequestCancel(ctx, runID, "ops")
		require.NoError(t, err)
		require.True(t, cancelling)
		_, err = l.commit(t, runID, 0, 41)
		require.ErrorIs(t, err, store.ErrStaleAttempt, "no commit after a cancel")
		_, ok, err := l.DispatchChunk(ctx, dispatchParams(runID, epoch, 0, 43))
		require.NoError(t, err)
		require.False(t, ok, "nothing is dispatched once cancelling")
		s, err := l.RenewLease(ctx, lease, conformanceTTL)
		require.NoError(t, err)
		require.True(t, s.CancelRequested)
		_, err = l.FinishRun(ctx, lease, store.RunEnd{Estado: domain.EstadoConsolidados})
		require.ErrorIs(t, err, store.ErrCancelRequested)
		ended, err := l.FinishRun(ctx, lease, store.RunEnd{Estado: domain.EstadoCancelada, Interrupted: true})
		require.NoError(t, err)
		require.True(t, ended)
		run, err := l.GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, domain.EstadoCancelada, run.Estado)
		require.True(t, run.CancelRequested)
		require.Equal(t, 1, run.ChunksSucceeded)
		require.Equal(t, 1, run.ChunksCancelled)
		require.Equal(t, 5, run.EmployeesCancelled)
		require.Equal(t, domain.EstadoCancelada, l.closingEstado(t, runID))
		cancelling, err = l.RequestCancel(ctx, runID, "ops")
		require.NoError(t, err)
		require.False(t, cancelling, "an ended run is not cancelled")
	}},
	{"the run's end needs its chunks done and happens once", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 4, 6)
		epoch := acquire(t, l, runID, "a")
		lease := store.RunLease{RunID: runID, Epoch: epoch}
		end := store.RunEnd{Estado: domain.EstadoConsolidados, TotalsVerified: true}
		for i, token := range []int64{51, 52} {
			dispatchTo(t, l, runID, epoch, i, token)
		}
		_, err := l.commit(t, runID, 0, 51)
		require.NoError(t, err)
		_, err = l.FinishRun(ctx, lease, end)
		require.ErrorIs(t, err, store.ErrChunksOpen)
		_, err = l.commit(t, runID, 1, 52)
		require.NoError(t, err)
		_, err = l.FinishRun(ctx, store.RunLease{RunID: runID, Epoch: epoch + 1}, end)
		require.ErrorIs(t, err, store.ErrLeaseLost)
		totals, err := controlTotals(ctx, l, runID)
		require.NoError(t, err)
		require.True(t, totals.Agree(), "%+v", totals)
		require.Equal(t, 10, totals.Written.Employees)
		end.Totals = totals.Ledger
		ended, err := l.FinishRun(ctx, lease, end)
		require.NoError(t, err)
		require.True(t, ended)
		ended, err = l.FinishRun(ctx, lease, end)
		require.NoError(t, err)
		require.False(t, ended, "a run ends once")
		run, err := l.GetRun(ctx, runID)
		require.NoError(t, err)
		require.True(t, run.Finished())
		require.Equal(t, domain.EstadoConsolidados, run.Estado)
		require.Equal(t, 10, run.EmployeesDone)
		require.Equal(t, totals.Ledger.LiquidoPagar, run.LiquidoPagar)
		require.Equal(t, domain.EstadoConsolidados, l.closingEstado(t, runID))
		_, err = l.RenewLease(ctx, lease, conformanceTTL)
		require.ErrorIs(t, err, store.ErrLeaseLost, "the lease ends with the run")
		_, ok, err := l.AcquireLease(ctx, runID, "b", conformanceTTL)
		require.NoError(t, err)
		require.False(t, ok, "an ended run is driven by nobody")
		unfinished, err := l.UnfinishedRuns(ctx)
		require.NoError(t, err)
		for _, u := range unfinished {
			require.NotEqual(t, runID, u.ID, "an ended run is not unfinished")
		}
	}},
	{"an aborted run cancels its open chunks and abandons its attempts", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 5, 5)
		epoch := acquire(t, l, runID, "a")
		dispatchTo(t, l, runID, epoch, 0, 61)
		ended, err := l.AbortRun(ctx, store.RunLease{RunID: runID, Epoch: epoch}, "disk full")
		require.NoError(t, err)
		require.True(t, ended)
		run, err := l.GetRun(ctx, runID)
		require.NoError(t, err)
		require.Equal(t, domain.EstadoError, run.Estado)
		require.Equal(t, "disk full", run.Error)
		require.Equal(t, 2, run.ChunksCancelled)
		_, err = l.commit(t, runID, 0, 61)
		require.ErrorIs(t, err, store.ErrStaleAttempt)
		require.Equal(t, domain.EstadoError, l.closingEstado(t, runID))
	}},
	{"the steps after the end are claimed by one replica and done once", func(t *testing.T, l ledgerUnderTest) {
		ctx := t.Context()
		runID := l.start(t, 10)
		claim := func(owner string) bool {
			claimed, err := l.ClaimAfterEnd(ctx, runID, owner, conformanceTTL)
			require.NoError(t, err)
			return claimed
		}
		mark := func(owner string, done bool) bool {
			marked, err := l.EndAfterEnd(ctx, runID, owner, done)
			require.NoError(t, err)
			return marked
		}
		awaiting := func() []int64 {
			ids, err := l.RunsAwaitingAfterEnd(ctx, 10)
			require.NoError(t, err)
			return ids
		}
		require.False(t, claim("a"), "a run not ended has no steps after its end")
		epoch := acquire(t, l, runID, "a")
		_, err := l.FinishRun(ctx, store.RunLease{RunID: runID, Epoch: epoch}, store.RunEnd{Estado: domain.EstadoCancelada, Interrupted: true})
		require.NoError(t, err)
		require.Contains(t, awaiting(), runID)
		require.True(t, claim("a"))
		require.False(t, claim("b"), "a live claim is not taken")
		require.NotContains(t, awaiting(), runID)
		require.False(t, mark("a", false))
		require.True(t, claim("b"), "a claim given up is taken at once")
		l.expire(t, runID)
		require.True(t, claim("a"), "an expired claim is taken")
		require.True(t, mark("b", true))
		require.False(t, mark("a", true), "the steps are marked done once")
		require.False(t, claim("a"))
		require.NotContains(t, awaiting(), runID)
	}},
}

// TestLedgerConformance runs every case on PostgreSQL and in memory.
func TestLedgerConformance(t *testing.T) {
	t.Parallel()
	ledgers := []struct {
		name string
		make func(t *testing.T) ledgerUnderTest
	}{{"postgres", pgLedgerUnderTest}, {"memory", memLedgerUnderTest}}
	for _, c := range conformanceCases {
		for _, lt := range ledgers {
			t.Run(c.name+"/"+lt.name, func(t *testing.T) {
				t.Parallel()
				c.run(t, lt.make(t))
			})
		}
	}
}

// controlTotals checks a run's totals in one statement and in two halves, and
// requires both to say the same.
func controlTotals(ctx context.Context, l ledgerUnderTest, runID int64) (store.ControlTotals, error) {
	whole, err := l.CheckControlTotals(ctx, runID, false)
	if err != nil {
		return whole, err
	}
	halves, err := l.CheckControlTotals(ctx, runID, true)
	if err != nil {
		return halves, err
	}
	if whole != halves {
		return whole, fmt.Errorf("the totals in one statement %+v and in two halves %+v differ", whole, halves)
	}
	return whole, nil
}
