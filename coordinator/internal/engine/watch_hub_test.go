package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/synth"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// countingLedger counts the ledger reads a report makes (a watch reads nothing
// else of the ledger when it names the run by id).
type countingLedger struct {
	ledger
	reads atomic.Int64
}

func (c *countingLedger) GetRun(ctx context.Context, runID int64) (store.Run, error) {
	c.reads.Add(1)
	return c.ledger.GetRun(ctx, runID)
}

func (c *countingLedger) Chunks(ctx context.Context, runID int64, limit int, statuses ...domain.ChunkStatus) ([]store.Chunk, error) {
	c.reads.Add(1)
	return c.ledger.Chunks(ctx, runID, limit, statuses...)
}

func (c *countingLedger) GetMetrics(ctx context.Context, closingID int64) (store.Metrics, error) {
	c.reads.Add(1)
	return c.ledger.GetMetrics(ctx, closingID)
}

// countingProgress counts the progress hash reads.
type countingProgress struct {
	progress.Store
	gets atomic.Int64
}

func (c *countingProgress) Progress(ctx context.Context, runID int64) (progress.Snapshot, bool, error) {
	c.gets.Add(1)
	return c.Store.Progress(ctx, runID)
}

// watchFixture is an engine on a real PostgreSQL and Redis, not running (nothing
// drives the run), with one stored run of four chunks whose progress the test
// moves by hand.
type watchFixture struct {
	t        *testing.T
	e        *Engine
	ledger   *countingLedger
	progress *countingProgress
	run      store.Run
}

func newWatchFixture(t *testing.T) *watchFixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	sum, err := synth.Generate(ctx, pool, synth.Config{Employees: 20, Seed: 1})
	require.NoError(t, err)
	closing, err := store.GetClosing(ctx, pool, sum.ClosingID)
	require.NoError(t, err)
	r := pgtest.NewRedis(t)
	client := r.Client(t)

	l := &countingLedger{ledger: pgStore{pool: pool}}
	p := &countingProgress{Store: progress.NewRedisStore(client, r.Prefix, progress.DjangoCache{})}
	// WatchEvery is far beyond the test: every reading is one the test caused.
	e, err := newEngine(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{WatchEvery: time.Hour}, l, pgStore{pool: pool}, nil, p)
	require.NoError(t, err)

	var ids []int64
	rows, err := pool.Query(ctx, "SELECT id FROM nomina_empleado_cierre WHERE cierre_id = $1 ORDER BY id", closing.ID)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 20)
	nr := store.NewRun{ClosingID: closing.ID, Mode: domain.ModeFull, Policy: domain.PolicySeed, ChunkSize: 5,
		PreviousEstado: closing.Estado, Deadline: time.Now().Add(time.Hour), TotalEmployees: 20}
	for i := range 4 {
		nr.Chunks = append(nr.Chunks, store.ChunkRange{Index: i, FirstID: ids[5*i], LastID: ids[5*i+4], Employees: 5, Weight: 5})
	}
	runID, err := l.StartRun(ctx, nr)
	require.NoError(t, err)
	run, err := l.ledger.GetRun(ctx, runID)
	require.NoError(t, err)
	snap := progress.Compute(progress.Snapshot{TotalChunks: 4, TotalEmployees: 20}, run.StartedAt, time.Now())
	require.NoError(t, p.Publish(ctx, progress.Run{ID: runID, ClosingID: closing.ID, KeepFor: time.Hour}, nil, snap))
	l.reads.Store(0)
	p.gets.Store(0)
	return &watchFixture{t: t, e: e, ledger: l, progress: p, run: run}
}

// chunkDone marks chunk i done in Redis, as a driver does, and notifies.
func (f *watchFixture) chunkDone(i int) {
	f.t.Helper()
	_, _, err := f.progress.ChunkEnded(context.Background(), progress.Run{ID: f.run.ID, ClosingID: f.run.ClosingID, KeepFor: time.Hour},
		progress.ChunkEnd{Index: i, Employees: 5, Records: 120})
	require.NoError(f.t, err)
	f.e.notify(f.run.ID)
}

// end ends the run (as an interrupted error) and notifies.
func (f *watchFixture) end() {
	f.t.Helper()
	ctx := context.Background()
	epoch, ok, err := f.ledger.AcquireLease(ctx, f.run.ID, "test", time.Minute)
	require.NoError(f.t, err)
	require.True(f.t, ok)
	ended, err := f.ledger.AbortRun(ctx, store.RunLease{RunID: f.run.ID, Epoch: epoch}, "ended by the test")
	require.NoError(f.t, err)
	require.True(f.t, ended)
	f.e.notify(f.run.ID)
}

// stream is one Watch call and what it was sent.
type stream struct {
	cancel context.CancelFunc
	done   chan struct{}
	hold   chan struct{} // when not nil, the first send waits until it is closed

	mu    sync.Mutex
	sent  []progress.Snapshot
	final *Report
	err   error
}

func (s *stream) last() (progress.Snapshot, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		return progress.Snapshot{}, 0
	}
	return s.sent[len(s.sent)-1], len(s.sent)
}

func (f *watchFixture) watch(hold chan struct{}) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{cancel: cancel, done: make(chan struct{}), hold: hold}
	f.t.Cleanup(cancel)
	go func() {
		defer close(s.done)
		err := f.e.Watch(ctx, Ref{RunID: f.run.ID}, func(p progress.Snapshot, final *Report) error {
			s.mu.Lock()
			first := len(s.sent) == 0
			s.sent = append(s.sent, p)
			s.final = final
			s.mu.Unlock()
			if first && s.hold != nil {
				<-s.hold
			}
			return nil
		})
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}()
	return s
}

// waitAll waits until every stream's last message satisfies cond.
func (f *watchFixture) waitAll(streams []*stream, what string, cond func(p progress.Snapshot, n int) bool) {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		for _, s := range streams {
			if !cond(s.last()) {
				return false
			}
		}
		return true
	}, 20*time.Second, 5*time.Millisecond, what)
}

// waitEnded waits until every stream has returned, each with the run's final
// report and no error.
func (f *watchFixture) waitEnded(streams []*stream) {
	f.t.Helper()
	for _, s := range streams {
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			f.t.Fatal("a watch did not end with its run")
		}
		s.mu.Lock()
		require.NoError(f.t, s.err)
		require.NotNil(f.t, s.final, "a watch ended without the final report")
		require.Equal(f.t, domain.EstadoError, s.final.Run.Estado)
		s.mu.Unlock()
	}
}

// watchSequence watches one run with n streams through the same sequence of
// changes (four chunks done, then the end) and returns the ledger and Redis
// reads it took.
func watchSequence(t *testing.T, n int) (ledgerReads, redisReads int64) {
	f := newWatchFixture(t)
	streams := make([]*stream, n)
	for i := range streams {
		streams[i] = f.watch(nil)
	}
	f.waitAll(streams, "every stream's first message", func(_ progress.Snapshot, sent int) bool { return sent > 0 })
	for i := range 4 {
		f.chunkDone(i)
		f.waitAll(streams, "every stream sees the chunk done", func(p progress.Snapshot, _ int) bool { return p.ChunksDone == i+1 })
	}
	f.end()
	f.waitEnded(streams)
	require.Zero(t, f.e.watch.size(), "the run ended: its feed is dropped")
	return f.ledger.reads.Load(), f.progress.gets.Load()
}

// TestWatchStreamsShareOneReading measures what 500 streams on one run cost
// against one stream, for the same changes: with one reading per run shared by
// its streams, the same number of reads (the old per-stream reports took 500
// times as many).
func TestWatchStreamsShareOneReading(t *testing.T) {
	t.Parallel()
	oneLedger, oneRedis := watchSequence(t, 1)
	manyLedger, manyRedis := watchSequence(t, 500)
	t.Logf("ledger reads: 1 stream %d, 500 streams %d; progress reads: %d, %d", oneLedger, manyLedger, oneRedis, manyRedis)
	require.Positive(t, oneLedger)
	require.LessOrEqual(t, manyLedger, 2*oneLedger, "500 streams must cost about what one does in ledger reads")
	require.LessOrEqual(t, manyRedis, 2*oneRedis, "500 streams must cost about what one does in Redis reads")
}

func TestWatchHubHoldsOnlyWatchedRuns(t *testing.T) {
	t.Parallel()
	f := newWatchFixture(t)
	hub := f.e.watch

	t.Run("NotifyForAnUnwatchedRunAddsNothing", func(t *testing.T) {
		f.e.notify(f.run.ID)
		f.e.notify(987654)
		require.Zero(t, hub.size())
		require.Zero(t, f.ledger.reads.Load(), "nobody watches: nothing is read")
	})
	t.Run("UnknownRunLeavesNothing", func(t *testing.T) {
		err := f.e.Watch(context.Background(), Ref{RunID: 987654}, func(progress.Snapshot, *Report) error { return nil })
		var ee *Error
		require.True(t, errors.As(err, &ee), "%v", err)
		require.Equal(t, KindNotFound, ee.Kind)
		require.Zero(t, hub.size())
	})
	t.Run("LastStreamToLeaveDropsTheFeed", func(t *testing.T) {
		a, b := f.watch(nil), f.watch(nil)
		f.waitAll([]*stream{a, b}, "first messages", func(_ progress.Snapshot, n int) bool { return n > 0 })
		require.Equal(t, 1, hub.size(), "two streams of one run share one feed")
		a.cancel()
		<-a.done
		require.Equal(t, 1, hub.size(), "one stream still watches")
		b.cancel()
		<-b.done
		require.Zero(t, hub.size())
	})
	t.Run("SlowStreamHoldsUpNobodyAndGetsTheNewest", func(t *testing.T) {
		hold := make(chan struct{})
		slow, fast := f.watch(hold), f.watch(nil)
		f.waitAll([]*stream{slow, fast}, "first messages", func(_ progress.Snapshot, n int) bool { return n > 0 })
		for i := range 4 {
			f.chunkDone(i)
			f.waitAll([]*stream{fast}, "the fast stream sees the chunk done", func(p progress.Snapshot, _ int) bool { return p.ChunksDone == i+1 })
		}
		f.end()
		f.waitEnded([]*stream{fast})
		require.Zero(t, hub.size(), "the run ended: its feed is dropped while a stream still sends")
		close(hold)
		f.waitEnded([]*stream{slow})
		_, sent := slow.last()
		require.Equal(t, 2, sent, "the slow stream skips to the final report: no backlog")
	})
}
