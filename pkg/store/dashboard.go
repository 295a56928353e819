package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/domain"
)

// The dashboard's reads (coordinator/internal/webui): a run's chunk map, the
// employees consolidated per interval, and what each worker did lately (by its
// attempts). All of
// them read the ledger only, and the last two only the chunks of the runs that
// ended in (or are still running through) the window asked, found by the run
// table and then the chunk ledger's primary key, never a scan of every chunk.

// ChunkCell is one chunk as the dashboard's chunk map draws it.
type ChunkCell struct {
	Index           int
	Status          domain.ChunkStatus
	Employees       int
	Attempts        int
	Worker          string
	DurationSeconds float64    // of the attempt that ended it; 0 while it has not
	DispatchedAt    *time.Time // the last dispatch; nil before the first
	FinishedAt      *time.Time // nil while not ended
	ParentIndex     *int       // a half of a split chunk: the chunk it is a half of
	WorkerDied      bool
	Error           string
}

// ChunkMap reads every chunk of a run, in index order, with what the chunk map
// shows of each.
func ChunkMap(ctx context.Context, q Querier, runID int64) ([]ChunkCell, error) {
	rows, err := q.Query(ctx, `
		SELECT chunk_index, status, employees, attempts, coalesce(worker, ''), coalesce(duration_seconds, 0),
			dispatched_at, finished_at, parent_index, worker_died, coalesce(error, '')
		FROM consolidation_chunk WHERE run_id = $1 ORDER BY chunk_index`, runID)
	if err != nil {
		return nil, fmt.Errorf("reading the chunk map of consolidation %d: %w", runID, err)
	}
	cells, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ChunkCell, error) {
		var c ChunkCell
		err := row.Scan(&c.Index, &c.Status, &c.Employees, &c.Attempts, &c.Worker, &c.DurationSeconds,
			&c.DispatchedAt, &c.FinishedAt, &c.ParentIndex, &c.WorkerDied, &c.Error)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the chunk map of consolidation %d: %w", runID, err)
	}
	return cells, nil
}

// ThroughputPoint is the employees consolidated by chunks that succeeded in
// [Start, Start+bucket).
type ThroughputPoint struct {
	Start     time.Time
	Employees int64
}

// sqlRecentRuns are the runs still running or ended at or after $1.
const sqlRecentRuns = `SELECT id FROM consolidation_run WHERE finished_at IS NULL OR finished_at >= $1`

var sqlThroughput = sqlf(`
SELECT date_bin($2::interval, c.finished_at, $1) AS t, sum(c.employees)
FROM consolidation_chunk c
WHERE c.run_id IN (` + sqlRecentRuns + `) AND c.status = {succeeded} AND c.finished_at >= $1
GROUP BY t ORDER BY t`)

// Throughput adds up the employees of the chunks that succeeded since since, by
// bucket (buckets with none are left out).
func Throughput(ctx context.Context, q Querier, since time.Time, bucket time.Duration) ([]ThroughputPoint, error) {
	rows, err := q.Query(ctx, sqlThroughput, since, bucket)
	if err != nil {
		return nil, fmt.Errorf("reading the throughput since %s: %w", since.Format(time.RFC3339), err)
	}
	points, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ThroughputPoint, error) {
		var p ThroughputPoint
		err := row.Scan(&p.Start, &p.Employees)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the throughput since %s: %w", since.Format(time.RFC3339), err)
	}
	return points, nil
}

// WorkerActivity is what the attempts of the ledger say of one worker, named as
// the coordinator dispatched to it (its address), since a time.
type WorkerActivity struct {
	Worker          string
	ChunksCommitted int       // attempts that committed their chunk
	AttemptsFailed  int       // attempts that ended in an error, a timeout or the worker's death
	LastSeen        time.Time // its last dispatch or attempt end
}

// failedOutcomes are the attempt outcomes counted as a worker's failures: not a
// busy reply, a call that never started, a stale or abandoned attempt.
var failedOutcomes = []domain.Outcome{domain.OutcomeDataError, domain.OutcomeTimeout, domain.OutcomeWorkerDied, domain.OutcomeError}

var sqlWorkerActivity = sqlf(`
SELECT a.worker, count(*) FILTER (WHERE a.outcome = {committed}), count(*) FILTER (WHERE a.outcome = ANY($2)),
	max(coalesce(a.finished_at, a.started_at))
FROM consolidation_chunk_attempt a
WHERE a.run_id IN (` + sqlRecentRuns + `) AND a.worker IS NOT NULL AND a.started_at >= $1
GROUP BY a.worker ORDER BY a.worker`)

// WorkersActivity reads, per worker, its attempts since since: the chunks it
// committed, the attempts that failed on it, and when it was last given or ended
// one.
func WorkersActivity(ctx context.Context, q Querier, since time.Time) ([]WorkerActivity, error) {
	rows, err := q.Query(ctx, sqlWorkerActivity, since, failedOutcomes)
	if err != nil {
		return nil, fmt.Errorf("reading the workers' activity since %s: %w", since.Format(time.RFC3339), err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WorkerActivity, error) {
		var w WorkerActivity
		err := row.Scan(&w.Worker, &w.ChunksCommitted, &w.AttemptsFailed, &w.LastSeen)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the workers' activity since %s: %w", since.Format(time.RFC3339), err)
	}
	return out, nil
}
