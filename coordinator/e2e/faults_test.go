package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/store"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// attempt is a row of the attempt ledger.
type attempt struct {
	Chunk         int
	Attempt       int
	Outcome       domain.Outcome
	CommitRefused bool
}

func (c *cluster) attempts(runID int64) []attempt {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), `
		SELECT chunk_index, attempt, coalesce(outcome, ''), commit_refused_at IS NOT NULL
		FROM consolidation_chunk_attempt WHERE run_id = $1 ORDER BY chunk_index, attempt`, runID)
	require.NoError(c.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[attempt])
	require.NoError(c.t, err)
	return out
}

// requireCleanResult checks a run ended datos_consolidados with exactly the rows of
// the rules, every chunk succeeded once in the ledger, and no employee twice.
func (c *cluster) requireCleanResult(closing int64, runID int64, want any) {
	c.t.Helper()
	final := c.waitEnd(runID, 2*time.Minute)
	require.Equal(c.t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())
	require.True(c.t, final.GetControlTotals().GetVerified())
	requireResultsEqual(c.t, c.pool, closing, expected(c.t, c.pool, closing))
	var dup int
	require.NoError(c.t, c.pool.QueryRow(context.Background(), `
		SELECT count(*) FROM (SELECT empleado_origen_id FROM nomina_empleado_consolidado WHERE cierre_id = $1
		GROUP BY 1 HAVING count(*) > 1) d`, closing).Scan(&dup))
	require.Zero(c.t, dup, "employees written twice")
	var notSucceeded int
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM consolidation_chunk WHERE run_id = $1 AND status <> $2", runID, domain.ChunkSucceeded).Scan(&notSucceeded))
	require.Zero(c.t, notSucceeded)
	var runs int
	require.NoError(c.t, c.pool.QueryRow(context.Background(), "SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closing).Scan(&runs))
	require.Equal(c.t, 1, runs, "runs of the closing")
}

func TestStaleAttemptCannotCommit(t *testing.T) {
	t.Parallel()
	// Chunk 0 stalls 2.5s before committing, on each worker the first time; the
	// coordinator gives a call 1s, re-dispatches, and the stalled attempts wake up
	// and try to commit with their old tokens.
	c := newCluster(t, clusterOptions{workers: 2,
		workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=0=2500ms"},
		coordEnv:  []string{"CHUNK_HARD_TIMEOUT=1s", "CHUNK_MAX_ATTEMPTS=5"}})
	closing := c.generate(400, 31)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	c.requireCleanResult(closing, resp.GetConsolidationId(), nil)

	// The stalled attempts tried to commit after being superseded, and were refused.
	require.Eventually(t, func() bool {
		refused := 0
		for _, a := range c.attempts(resp.GetConsolidationId()) {
			if a.Chunk == 0 && a.CommitRefused {
				refused++
			}
		}
		return refused >= 1
	}, 10*time.Second, 50*time.Millisecond, "no refused commit recorded for chunk 0")
	var committed, timeouts int
	for _, a := range c.attempts(resp.GetConsolidationId()) {
		if a.Chunk != 0 {
			continue
		}
		switch a.Outcome {
		case domain.OutcomeCommitted:
			committed++
		case domain.OutcomeTimeout:
			timeouts++
		}
	}
	require.Equal(t, 1, committed, "chunk 0 committed exactly once")
	require.GreaterOrEqual(t, timeouts, 1)
	// Nothing changed after the stale attempts woke up.
	requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))
}

func TestWorkerKilledMidRun(t *testing.T) {
	t.Parallel()
	// The first worker holds chunk 2 for a long time: it is surely busy with it when
	// it is killed.
	c := newCluster(t, clusterOptions{workers: 3})
	victim := c.workers[0]
	victim.Env = append(victim.Env, "FAULT_HOLD_BEFORE_COMMIT=2=30s,3=30s")
	c.kill(victim)
	c.start(victim)
	c.waitServing(victim)

	closing := c.generate(3000, 41)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 150})
	runID := resp.GetConsolidationId()
	require.Eventually(t, func() bool {
		var held int
		_ = c.pool.QueryRow(context.Background(), `SELECT count(*) FROM consolidation_chunk
			WHERE run_id = $1 AND status = $3 AND worker = $2`, runID, victim.Addr, domain.ChunkRunning).Scan(&held)
		return held > 0
	}, 30*time.Second, 10*time.Millisecond, "the victim never took a chunk")
	c.kill(victim)

	c.requireCleanResult(closing, runID, nil)
	retried := map[int]bool{}
	for _, a := range c.attempts(runID) {
		if a.Attempt > 1 {
			retried[a.Chunk] = true
		}
	}
	require.NotEmpty(t, retried, "the ledger shows no re-dispatched chunk")
}

func TestWorkerDiesAfterCommit(t *testing.T) {
	t.Parallel()
	// The worker commits chunk 1, then stalls before answering and is killed: the
	// chunk must not be processed again.
	c := newCluster(t, clusterOptions{workers: 2, workerEnv: []string{"FAULT_HOLD_AFTER_COMMIT=1=30s"}})
	closing := c.generate(600, 51)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	runID := resp.GetConsolidationId()
	var worker string
	require.Eventually(t, func() bool {
		err := c.pool.QueryRow(context.Background(), `SELECT worker FROM consolidation_chunk
			WHERE run_id = $1 AND chunk_index = 1 AND status = $2`, runID, domain.ChunkSucceeded).Scan(&worker)
		return err == nil
	}, 30*time.Second, 10*time.Millisecond)
	for _, w := range c.workers {
		if w.Name == worker {
			c.kill(w)
		}
	}
	c.requireCleanResult(closing, runID, nil)
	for _, a := range c.attempts(runID) {
		if a.Chunk == 1 {
			require.Equal(t, 1, a.Attempt, "chunk 1 was dispatched again after it committed")
		}
	}
}

func TestCoordinatorKilledAndRestarted(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2})
	closing := c.generate(6000, 61)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 150})
	runID := resp.GetConsolidationId()
	c.waitFor(runID, time.Minute, "a quarter done", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= r.GetTotalChunks()/4
	})
	c.kill(c.coord)
	// What had committed when the coordinator died must not be dispatched again.
	rows, err := c.pool.Query(context.Background(),
		"SELECT chunk_index FROM consolidation_chunk WHERE run_id = $1 AND status = $2", runID, domain.ChunkSucceeded)
	require.NoError(t, err)
	doneBefore, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.NotEmpty(t, doneBefore)

	c.start(c.coord)
	c.waitServing(c.coord)
	c.requireCleanResult(closing, runID, nil)
	attempts := map[int]int{}
	for _, a := range c.attempts(runID) {
		attempts[a.Chunk] = max(attempts[a.Chunk], a.Attempt)
	}
	for _, idx := range doneBefore {
		require.Equal(t, 1, attempts[int(idx)], "chunk %d had committed before the crash and was dispatched again", idx)
	}
}

func TestRedisFlushedMidRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2, privateRedis: true})
	closing := c.generate(5000, 71)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 150})
	runID := resp.GetConsolidationId()
	c.waitFor(runID, time.Minute, "some chunks done", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= 3
	})
	rdb := redis.NewClient(&redis.Options{Addr: c.redisServer.Addr()})
	defer rdb.Close()
	require.NoError(t, rdb.FlushAll(context.Background()).Err())

	c.requireCleanResult(closing, runID, nil)
	final := c.waitEnd(runID, time.Minute)
	// Counters and progress were rebuilt from the ledger, not restarted from zero.
	p := c.redisHash(runID, "progress")
	require.Equal(t, itoa(int64(final.GetTotalChunks())), p["chunks_completados"])
	require.Equal(t, "5000", p["empleados_procesados"])
	n, err := rdb.SCard(context.Background(), c.redis.Prefix+"run:"+itoa(runID)+":done").Result()
	require.NoError(t, err)
	require.Equal(t, int64(final.GetTotalChunks()), n)
}

func TestRedisRestartedMidRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2, privateRedis: true})
	closing := c.generate(5000, 72)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 150})
	runID := resp.GetConsolidationId()
	c.waitFor(runID, time.Minute, "some chunks done", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= 3
	})
	c.redisServer.Kill()
	ended := c.endedChunks(runID) // counted once Redis is gone: a later end happened without it
	// Chunks end while Redis is down.
	require.Eventually(t, func() bool { return c.endedChunks(runID) > ended }, time.Minute, 20*time.Millisecond,
		"no chunk ended while Redis was down")
	require.NoError(t, c.redisServer.Restart(context.Background()))
	c.requireCleanResult(closing, runID, nil)
	require.Eventually(t, func() bool {
		p := c.redisHash(runID, "progress")
		return p["empleados_procesados"] == "5000"
	}, 10*time.Second, 50*time.Millisecond, "progress not rebuilt after the restart")
}

func TestPostgresSessionsKilledMidRun(t *testing.T) {
	t.Parallel()
	// The first chunks stall 1.5s inside their commit transaction; meanwhile the
	// test terminates every worker session that is in a transaction, so those
	// chunks lose their session mid-chunk.
	c := newCluster(t, clusterOptions{workers: 2, workerEnv: []string{"FAULT_HOLD_IN_COMMIT=0=1500ms,1=1500ms,2=1500ms,3=1500ms"}})
	closing := c.generate(1200, 81)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 150})
	runID := resp.GetConsolidationId()
	var killed int
	require.Eventually(t, func() bool {
		require.NoError(t, c.pool.QueryRow(context.Background(), `
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'consolidation-worker' AND datname = current_database()
			  AND state = 'idle in transaction'`).Scan(&killed))
		return killed > 0
	}, 30*time.Second, 20*time.Millisecond, "no worker session was caught mid-chunk")

	c.requireCleanResult(closing, runID, nil)
	retried := false
	for _, a := range c.attempts(runID) {
		retried = retried || a.Attempt > 1
	}
	require.True(t, retried, "the ledger shows no retried chunk")
}

func TestCancelMidRun(t *testing.T) {
	t.Parallel()
	// Every chunk pauses 1.5s before committing and ignores the cancel: after the
	// cancel it wakes up and tries to commit, and must be refused.
	c := newCluster(t, clusterOptions{workers: 2, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=*=1500ms"}})
	closing := c.generate(2000, 91)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	runID := resp.GetConsolidationId()
	c.waitFor(runID, time.Minute, "some chunks done", func(r *consolidationv1.Consolidation) bool {
		return r.GetChunksSucceeded() >= 4
	})
	cres, err := c.client.CancelConsolidation(context.Background(), &consolidationv1.CancelConsolidationRequest{
		Ref: &consolidationv1.CancelConsolidationRequest_ClosingId{ClosingId: closing}})
	require.NoError(t, err)
	require.Equal(t, domain.EstadoCancelada, domain.Estado(cres.GetConsolidation().GetEstado()))
	require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_CANCELLED, cres.GetConsolidation().GetStatus())
	require.Equal(t, domain.EstadoCancelada, c.estado(closing))
	requireInterruptedCount(t, cres.GetConsolidation())

	// The held attempts wake up and try to commit: the fence refuses them (the
	// ledger records it), and no row appears while they do.
	refused := c.waitRefusedCommit(runID, "no attempt tried to commit after the cancel")
	c.requireNoRowsWhile(closing, 2*time.Second) // every attempt held at the cancel (1.5s) has woken by then
	c.requireNoRows(closing)
	require.Positive(t, refused, "no attempt tried to commit after the cancel")
	m, err := store.GetMetrics(context.Background(), c.pool, closing)
	require.NoError(t, err)
	require.Equal(t, runID, m.RunID)
	require.Zero(t, m.TotalEmpleados)
	require.Equal(t, int(cres.GetConsolidation().GetChunksSucceeded()), m.ChunksProcesados, "the cancelled chunks were not processed")
	// The report read later says the same (it is the ledger's, not the cancel's).
	later, err := c.client.GetConsolidation(context.Background(), &consolidationv1.GetConsolidationRequest{
		Ref: &consolidationv1.GetConsolidationRequest_ConsolidationId{ConsolidationId: runID}})
	require.NoError(t, err)
	requireInterruptedCount(t, later.GetConsolidation())

	// A cancelled closing may be consolidated again, and then it is complete.
	again := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	final := c.waitEnd(again.GetConsolidationId(), 2*time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()))
	requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))
}

func TestRunTimeLimit(t *testing.T) {
	t.Parallel()
	// Chunks 0 and 1 (dispatched first) stall 6s before committing, well past the
	// 3s limit; the other chunks commit before it, so the run has rows to remove.
	c := newCluster(t, clusterOptions{workers: 2, coordEnv: []string{"RUN_TIMEOUT=3s"},
		workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=0=6s,1=6s"}})
	closing := c.generate(2000, 101)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoTimeout, domain.Estado(final.GetEstado()))
	require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_TIMED_OUT, final.GetStatus())
	require.Equal(t, domain.EstadoTimeout, c.estado(closing))
	require.Positive(t, final.GetChunksSucceeded(), "no chunk committed before the limit: no rows to remove")
	requireInterruptedCount(t, final)
	// The attempts held at the deadline wake up and try to commit: the fence refuses
	// them (the ledger records it), and no row appears while they do.
	c.waitRefusedCommit(resp.GetConsolidationId(), "no attempt tried to commit after the time limit")
	c.requireNoRowsWhile(closing, 2*time.Second) // both held attempts woke within moments of each other
	c.requireNoRows(closing)
}

// requireInterruptedCount checks the report of a run whose end came before its
// chunks did (a cancel, the time limit) and removed its rows: nothing failed,
// the chunks not done are cancelled, no employee counts as consolidated (the rows
// were removed; employees_removed says how many were written), and the progress
// stops short of 100 %.
func requireInterruptedCount(t *testing.T, r *consolidationv1.Consolidation) {
	t.Helper()
	require.Zero(t, r.GetChunksFailed(), "a chunk the run never finished is not failed")
	require.Zero(t, r.GetFailedChunksTotal())
	require.Zero(t, r.GetFailedEmployeesTotal())
	require.Empty(t, r.GetFailedChunks())
	require.Positive(t, r.GetChunksCancelled())
	require.Equal(t, r.GetTotalChunks(), r.GetChunksSucceeded()+r.GetChunksCancelled(), "every chunk counted once")
	require.True(t, r.GetRowsRemoved())
	require.Zero(t, r.GetEmployeesConsolidated(), "the run's rows were removed")
	require.Zero(t, r.GetRecordsCreated())
	require.Positive(t, r.GetEmployeesRemoved())
	require.Positive(t, r.GetEmployeesCancelled())
	require.Equal(t, r.GetTotalEmployees(), r.GetEmployeesRemoved()+r.GetEmployeesCancelled(), "every employee counted once")
	p := r.GetProgress()
	require.Equal(t, r.GetChunksSucceeded(), p.GetChunksDone())
	require.Less(t, p.GetPercent(), 100.0)
	require.Zero(t, p.GetEmployeesDone())
}

// waitRefusedCommit waits until the ledger shows an attempt of the run that tried
// to commit after it had been superseded, and returns how many did.
func (c *cluster) waitRefusedCommit(runID int64, msg string) int {
	c.t.Helper()
	refused := 0
	require.Eventually(c.t, func() bool {
		refused = 0
		for _, a := range c.attempts(runID) {
			if a.CommitRefused {
				refused++
			}
		}
		return refused > 0
	}, 30*time.Second, 20*time.Millisecond, msg)
	return refused
}

// endedChunks counts a run's chunks that have ended, in the ledger.
func (c *cluster) endedChunks(runID int64) int {
	c.t.Helper()
	var n int
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM consolidation_chunk WHERE run_id = $1 AND status = ANY($2)",
		runID, []domain.ChunkStatus{domain.ChunkSucceeded, domain.ChunkFailed}).Scan(&n))
	return n
}

// requireNoRowsWhile checks, throughout d and not only at its end, that the closing
// has no consolidated rows: an absence no poll can confirm early.
func (c *cluster) requireNoRowsWhile(closing int64, d time.Duration) {
	c.t.Helper()
	require.Never(c.t, func() bool {
		var n int
		err := c.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = $1", closing).Scan(&n)
		return err != nil || n > 0
	}, d, 50*time.Millisecond, "rows of the run appeared after it ended")
}

func (c *cluster) requireNoRows(closing int64) {
	c.t.Helper()
	var n int
	require.NoError(c.t, c.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = $1", closing).Scan(&n))
	require.Zero(c.t, n, "rows of the run are left")
}

func TestDuplicateDeliveryIsAnsweredFromTheLedger(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	closing := c.generate(300, 111)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	c.requireCleanResult(closing, resp.GetConsolidationId(), nil)

	conn, err := grpcx.Dial(c.workers[0].Addr)
	require.NoError(t, err)
	defer conn.Close()
	w := consolidationv1.NewWorkerServiceClient(conn)
	// The committed attempt's token stays on the chunk's row: a repeated delivery
	// carries it.
	var token int64
	require.NoError(t, c.pool.QueryRow(context.Background(), `SELECT attempt_token FROM consolidation_chunk
		WHERE run_id = $1 AND chunk_index = 1`, resp.GetConsolidationId()).Scan(&token))
	for range 2 {
		out, err := w.ProcessChunk(context.Background(), &consolidationv1.ProcessChunkRequest{
			ConsolidationId: resp.GetConsolidationId(), ClosingId: closing, ChunkIndex: 1, AttemptToken: token})
		require.NoError(t, err)
		require.True(t, out.GetSummary().GetFromLedger())
		require.Equal(t, int32(100), out.GetSummary().GetEmployees())
	}
	// Any other token learns nothing of the chunk (docs/security-model.md).
	out, err := w.ProcessChunk(context.Background(), &consolidationv1.ProcessChunkRequest{
		ConsolidationId: resp.GetConsolidationId(), ClosingId: closing, ChunkIndex: 1, AttemptToken: token + 1})
	require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	require.Nil(t, out.GetSummary())
	requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))
}

func TestWorkerSIGTERMMidRun(t *testing.T) {
	t.Parallel()
	// The worker is busy with a chunk that stalls 2s inside its commit's
	// transaction when it gets SIGTERM: it stops taking work, finishes the chunk
	// within its drain time, and exits; the run completes on the other worker.
	c := newCluster(t, clusterOptions{workers: 2, workerEnv: []string{"FAULT_HOLD_IN_COMMIT=1=2s"}})
	closing := c.generate(1500, 141)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	runID := resp.GetConsolidationId()
	// The ledger says a chunk is running from its dispatch, before the worker
	// has taken the call: signalled then, the worker turns the call away (it is
	// draining) and another worker does the chunk. So the worker is signalled
	// once it is in the stall: a worker session idle in a transaction for longer
	// than any commit but the held one takes, while chunk 1 is running.
	var worker string
	require.Eventually(t, func() bool {
		err := c.pool.QueryRow(context.Background(), `SELECT worker FROM consolidation_chunk
			WHERE run_id = $1 AND chunk_index = 1 AND status = $2 AND EXISTS (SELECT FROM pg_stat_activity
				WHERE application_name = 'consolidation-worker' AND state = 'idle in transaction'
				AND state_change < now() - interval '500 milliseconds')`, runID, domain.ChunkRunning).Scan(&worker)
		return err == nil
	}, 30*time.Second, 10*time.Millisecond)
	var victim *launch.Process
	for _, w := range c.workers {
		if w.Addr == worker {
			victim = w
		}
	}
	require.NotNil(t, victim)
	require.NoError(t, victim.Signal(syscall.SIGTERM))
	select {
	case <-victim.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not exit after SIGTERM")
	}
	c.requireCleanResult(closing, runID, nil)
	var status domain.ChunkStatus
	var by string
	require.NoError(t, c.pool.QueryRow(context.Background(), `SELECT c.status, a.worker FROM consolidation_chunk c
		JOIN consolidation_chunk_attempt a ON a.run_id = c.run_id AND a.chunk_index = c.chunk_index AND a.outcome = $2
		WHERE c.run_id = $1 AND c.chunk_index = 1`, runID, domain.OutcomeCommitted).Scan(&status, &by))
	require.Equal(t, domain.ChunkSucceeded, status)
	require.Equal(t, worker, by, "the draining worker finished its chunk")
}

// TestPermanentDatabaseErrorEndsTheRun: an error PostgreSQL will repeat on every try
// ends the run error_consolidacion with its SQLSTATE, on the driver's path
// (dispatching a chunk) and on a worker's (a commit refused for a privilege),
// instead of being retried or split; one the rows cause (a constraint they break)
// is split down to the employees; the closing's previous results are kept.
func TestPermanentDatabaseErrorEndsTheRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})
	ctx := context.Background()
	closing := c.generate(60, 141)
	c.requireCleanResult(closing, c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing}).GetConsolidationId(), nil)
	want := expected(t, c.pool, closing)

	// The driver's path: recording a dispatch is refused.
	_, err := c.pool.Exec(ctx, `
		CREATE FUNCTION e2e_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'insufficient_privilege'; END $$;
		CREATE TRIGGER e2e_refuse BEFORE INSERT ON consolidation_chunk_attempt
			FOR EACH ROW EXECUTE FUNCTION e2e_refuse()`)
	require.NoError(t, err)
	forced := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true, ChunkSize: 60})
	final := c.waitEnd(forced.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoError, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, "dispatching chunk 0: database error 42501 insufficient_privilege", final.GetError())
	require.Equal(t, domain.EstadoError, c.estado(closing))
	requireResultsEqual(t, c.pool, closing, want) // the previous results are kept
	logged, err := os.ReadFile(filepath.Join(c.logDir, c.coord.Name+".log"))
	require.NoError(t, err)
	require.Contains(t, string(logged), "run failed on a permanent database error")

	// A worker's path: every chunk's rows break a CHECK constraint; each chunk
	// fails on its first attempt, naming the SQLSTATE and the table, and is split
	// down to every employee (each one's rows break it too). Every employee's
	// centro_costo (the libro's alone, docs/rules.md) changes first: a run keeps
	// the rows of an employee whose result is unchanged and writes none of them.
	_, err = c.pool.Exec(ctx, `DROP TRIGGER e2e_refuse ON consolidation_chunk_attempt;
		ALTER TABLE nomina_concepto_empleado_consolidado ADD CONSTRAINT e2e_no_sb CHECK (codigo_concepto <> 'SB') NOT VALID`)
	require.NoError(t, err)
	_, err = c.pool.Exec(ctx, `UPDATE nomina_empleado_cierre SET centro_costo = coalesce(centro_costo, '') || '-B'
		WHERE cierre_id = $1`, closing)
	require.NoError(t, err)
	again := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 20})
	final = c.waitEnd(again.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoError, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, "60 of 60 employees failed", final.GetError())
	require.Equal(t, int32(60), final.GetFailedEmployeesTotal())
	require.Len(t, final.GetFailedChunks(), 60)
	for _, fc := range final.GetFailedChunks() {
		require.Equal(t, "database error 23514 check_violation table nomina_concepto_empleado_consolidado constraint e2e_no_sb",
			fc.GetError())
		require.Equal(t, int32(1), fc.GetAttempts(), "a permanent database error is not retried")
	}
	requireResultsEqual(t, c.pool, closing, want) // a failed run leaves the previous results

	// A worker's path again, with an error that is not the rows' doing: every
	// worker's commit is refused for a privilege (the coordinator, restoring the
	// previous rows, is not). The first refusal ends the run, naming the chunk and
	// the SQLSTATE; nothing is split.
	_, err = c.pool.Exec(ctx, `ALTER TABLE nomina_concepto_empleado_consolidado DROP CONSTRAINT e2e_no_sb;
		CREATE FUNCTION e2e_refuse_workers() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF current_setting('application_name') = 'consolidation-worker' THEN
				RAISE EXCEPTION 'refused' USING ERRCODE = 'insufficient_privilege';
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER e2e_refuse BEFORE INSERT ON nomina_concepto_empleado_consolidado
			FOR EACH STATEMENT EXECUTE FUNCTION e2e_refuse_workers()`)
	require.NoError(t, err)
	refused := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 20})
	final = c.waitEnd(refused.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoError, domain.Estado(final.GetEstado()), final.GetError())
	require.Regexp(t, `^chunk [0-2]: database error 42501 insufficient_privilege$`, final.GetError())
	require.Equal(t, int32(3), final.GetTotalChunks(), "no chunk was split")
	var split, attempts int
	require.NoError(t, c.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = $2), coalesce(max(attempts), 0)
		FROM consolidation_chunk WHERE run_id = $1`, refused.GetConsolidationId(), domain.ChunkSplit).Scan(&split, &attempts))
	require.Zero(t, split)
	require.Equal(t, 1, attempts, "a refusal is not retried")
	requireResultsEqual(t, c.pool, closing, want)
}

// killWorkersOn restarts every worker of the cluster with FAULT_KILL_ON_EMPLOYEE
// set to ids, and from then on starts again, at once, any worker that dies, until
// the test ends: each death is one the fault caused.
func (c *cluster) killWorkersOn(ids ...int64) {
	c.t.Helper()
	spec := ""
	for i, id := range ids {
		if i > 0 {
			spec += ","
		}
		spec += itoa(id)
	}
	for _, w := range c.workers {
		w.Env = append(w.Env, "FAULT_KILL_ON_EMPLOYEE="+spec)
		c.kill(w)
		c.start(w)
		c.waitServing(w)
	}
	stop := make(chan struct{})
	var revivers sync.WaitGroup
	for _, w := range c.workers {
		revivers.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-w.Done():
				}
				select {
				case <-stop:
					return
				default:
				}
				if err := w.Start(); err != nil {
					c.t.Errorf("restarting %s: %v", w.Name, err)
					return
				}
			}
		})
	}
	// Before the cluster's own cleanup kills the workers (cleanups run last first).
	c.t.Cleanup(func() {
		close(stop)
		revivers.Wait()
	})
}

// newKillerCluster is a cluster for employees that kill workers: two attempts a
// chunk, and one chunk at a time per worker, so a worker that dies takes no
// innocent chunk with it.
func newKillerCluster(t *testing.T, workers int) *cluster {
	t.Helper()
	return newCluster(t, clusterOptions{workers: workers, coordEnv: []string{"CHUNK_MAX_ATTEMPTS=2"},
		workerEnv: []string{"WORKER_MAX_IN_FLIGHT=1"}})
}

// diedAttempts counts the attempts of a run whose worker died holding the chunk.
func (c *cluster) diedAttempts(runID int64) int {
	n := 0
	for _, a := range c.attempts(runID) {
		if a.Outcome == domain.OutcomeWorkerDied {
			n++
		}
	}
	return n
}

func TestWorkersKilledByOneEmployee(t *testing.T) {
	t.Parallel()
	c := newKillerCluster(t, 3)
	closing := c.generate(120, 141)
	killer := c.libroIDs(closing)[90] // in the second chunk of 60
	c.killWorkersOn(killer)

	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 60})
	final := c.waitEnd(resp.GetConsolidationId(), 3*time.Minute)
	require.Equal(t, domain.EstadoParcial, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, "1 of 120 employees failed", final.GetError())
	require.Equal(t, map[int64]bool{killer: true}, failedIDs(final), "the killer failed alone, workers dying on it")
	fe := final.GetFailedEmployees()[0]
	require.Contains(t, fe.GetError(), "workers died holding it on all 2 attempts")
	require.Len(t, final.GetFailedChunks(), 1)
	requireResultsEqual(t, c.pool, closing, without(expected(t, c.pool, closing), killer))
	// Every chunk that held the killer died twice: 60 halves down to one in 5 or 6
	// splits, and the killer alone. Only calls a worker had taken on count: one
	// waiting for a slot as its worker died is never_started (docs/lifecycle.md).
	require.GreaterOrEqual(t, c.diedAttempts(resp.GetConsolidationId()), 2*6)
}

func TestWorkersKilledByMostEmployees(t *testing.T) {
	t.Parallel()
	c := newKillerCluster(t, 2)
	closing := c.generate(4, 151)
	ids := c.libroIDs(closing)
	killers := ids[1:]
	c.killWorkersOn(killers...)

	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	final := c.waitEnd(resp.GetConsolidationId(), 2*time.Minute)
	require.Equal(t, domain.EstadoErrorRecursos, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_RESOURCES_EXHAUSTED, final.GetStatus())
	require.Equal(t, domain.EstadoErrorRecursos, c.estado(closing))
	require.Equal(t, "3 of 4 employees failed; workers died processing alone employee rows "+
		itoa(killers[0])+", "+itoa(killers[1])+", "+itoa(killers[2]), final.GetError())
	require.Equal(t, map[int64]bool{killers[0]: true, killers[1]: true, killers[2]: true}, failedIDs(final))
	// The one good employee was consolidated, and its rows went with the run's
	// end: none remain (docs/rules.md, "Counting a run").
	require.Zero(t, final.GetEmployeesConsolidated(), "no consolidated row remains")
	require.True(t, final.GetRowsRemoved())
	require.Equal(t, int32(1), final.GetEmployeesRemoved(), "the one good employee was consolidated, then removed")
	c.requireNoRows(closing)
}

func TestCoordinatorKilledMidSplit(t *testing.T) {
	t.Parallel()
	c := newKillerCluster(t, 3)
	closing := c.generate(120, 161)
	killer := c.libroIDs(closing)[30] // in the first chunk of 60
	c.killWorkersOn(killer)

	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 60})
	runID := resp.GetConsolidationId()
	splits := func() int {
		var n int
		require.NoError(t, c.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM consolidation_chunk WHERE run_id = $1 AND status = $2", runID, domain.ChunkSplit).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return splits() >= 2 }, 2*time.Minute, 10*time.Millisecond, "no chunk was split")
	c.kill(c.coord)
	before := splits()

	c.start(c.coord)
	c.waitServing(c.coord)
	final := c.waitEnd(runID, 3*time.Minute)
	require.Equal(t, domain.EstadoParcial, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, map[int64]bool{killer: true}, failedIDs(final), "the halves were resumed down to the killer")
	require.Greater(t, splits(), before, "the restarted coordinator went on splitting")
	require.Equal(t, final.GetTotalChunks(), final.GetProgress().GetChunksDone())
	requireResultsEqual(t, c.pool, closing, without(expected(t, c.pool, closing), killer))
	var runs int
	require.NoError(t, c.pool.QueryRow(context.Background(), "SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closing).Scan(&runs))
	require.Equal(t, 1, runs, "runs of the closing")
}
