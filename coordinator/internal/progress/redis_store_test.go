package progress

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

const testTTL = time.Hour

// newTestStore is a RedisStore on the test Redis under a prefix of the test's own,
// with a client to read its keys.
func newTestStore(t *testing.T) (*RedisStore, *redis.Client, string) {
	t.Helper()
	r := pgtest.NewRedis(t)
	client := r.Client(t)
	return NewRedisStore(client, r.Prefix, DjangoCache{}), client, r.Prefix
}

// testRun is run id of closing closingID, kept testTTL.
func testRun(id, closingID int64) Run {
	return Run{ID: id, ClosingID: closingID, KeepFor: testTTL}
}

func hgetall(t *testing.T, c *redis.Client, key string) map[string]string {
	t.Helper()
	m, err := c.HGetAll(context.Background(), key).Result()
	require.NoError(t, err)
	return m
}

var endMetrics = Metrics{EmployeesPerSecond: 17.3, RecordsPerSecond: 416.8, PeakMemoryMB: 45.2, CPUPercent: 23.5,
	TotalSeconds: 7.8, Workers: 2}

// endMetricsHash is endMetrics as the metrics hash holds it.
var endMetricsHash = map[string]string{
	"throughput_empleados_sec": "17.3",
	"throughput_registros_sec": "416.8",
	"memoria_pico_mb":          "45.2",
	"cpu_promedio_percent":     "23.5",
	"tiempo_total":             "7.800",
	"workers_utilizados":       "2",
}

func TestClosingKeysComposeWithThePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, hash, want string
	}{
		{"consolidacion_", "progress", "consolidacion_progress_cierre_4"},
		{"consolidacion_", "metrics", "consolidacion_metrics_cierre_4"},
		{"", "progress", "consolidacion_progress_cierre_4"},
		{"nomina:", "metrics", "nomina:metrics_cierre_4"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, NewRedisStore(nil, tt.prefix, DjangoCache{}).closingKey(4, tt.hash), "prefix %q", tt.prefix)
	}
}

func TestRedisStoreKeepsTheClosingHashes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("PublishWritesTheClosingsProgressHash", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		snap := Snapshot{TotalChunks: 2, ChunksDone: 1, EmployeesDone: 66, TotalEmployees: 133, Records: 1584,
			Percent: 50, Elapsed: 3800 * time.Millisecond, ETA: 4200 * time.Millisecond}
		require.NoError(t, s.Publish(ctx, testRun(10, 4), []int{0}, snap))

		// The old Celery design's example, field for field, and the run it shows.
		require.Equal(t, map[string]string{
			"total_chunks":         "2",
			"chunks_completados":   "1",
			"progreso_porcentaje":  "50",
			"empleados_procesados": "66",
			"tiempo_transcurrido":  "3.8",
			"eta_restante":         "4.2",
			"consolidation_id":     "10",
		}, hgetall(t, c, prefix+"progress_cierre_4"))
		require.Empty(t, hgetall(t, c, prefix+"metrics_cierre_4"))
	})

	t.Run("ChunkEndedAdvancesItCountingDuplicatesOnce", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		start := time.Now().Add(-time.Second)
		require.NoError(t, s.Publish(ctx, testRun(11, 4), nil, Compute(Snapshot{TotalChunks: 3, TotalEmployees: 200}, start, time.Now())))
		require.Equal(t, "0", hgetall(t, c, prefix+"progress_cierre_4")["chunks_completados"])

		for _, step := range []struct {
			chunk, employees int
			added            bool
		}{{0, 66, true}, {0, 66, false}, {1, 67, true}, {1, 67, false}} {
			added, hadHash, err := s.ChunkEnded(ctx, testRun(11, 4), ChunkEnd{Index: step.chunk, Employees: step.employees, Records: 10 * step.employees})
			require.NoError(t, err)
			require.Equal(t, step.added, added)
			require.True(t, hadHash)
		}
		p := hgetall(t, c, prefix+"progress_cierre_4")
		require.Equal(t, "2", p["chunks_completados"])
		require.Equal(t, "133", p["empleados_procesados"])
		require.Equal(t, "3", p["total_chunks"])

		// The engine's refresh after ChunkEnded brings percent, elapsed and ETA.
		snap, ok, err := s.Progress(ctx, 11)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.Refresh(ctx, testRun(11, 4), Compute(snap, start, time.Now())))
		p = hgetall(t, c, prefix+"progress_cierre_4")
		require.Equal(t, "66.7", p["progreso_porcentaje"])
		require.Equal(t, "2", p["chunks_completados"])
		el, err := strconv.ParseFloat(p["tiempo_transcurrido"], 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, el, 1.0)
		eta, err := strconv.ParseFloat(p["eta_restante"], 64)
		require.NoError(t, err)
		require.Greater(t, eta, 0.0)
	})

	t.Run("ARefreshReadBeforeAChunkEndedDoesNotUndoIt", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		start := time.Now().Add(-time.Second)
		require.NoError(t, s.Publish(ctx, testRun(15, 4), nil, Compute(Snapshot{TotalChunks: 4, TotalEmployees: 400}, start, time.Now())))
		// A refresh reads the counters (nothing done yet) ...
		stale, ok, err := s.Progress(ctx, 15)
		require.NoError(t, err)
		require.True(t, ok)
		// ... two chunks end meanwhile ...
		for chunk := range 2 {
			_, _, err := s.ChunkEnded(ctx, testRun(15, 4), ChunkEnd{Index: chunk, Employees: 100, Records: 1000})
			require.NoError(t, err)
		}
		// ... and the refresh writes what it computed from its stale read.
		require.NoError(t, s.Refresh(ctx, testRun(15, 4), Compute(stale, start, time.Now())))
		for _, key := range []string{prefix + "run:15:progress", prefix + "progress_cierre_4"} {
			p := hgetall(t, c, key)
			require.Equal(t, "2", p["chunks_completados"], key)
			require.Equal(t, "200", p["empleados_procesados"], key)
		}
	})

	t.Run("MetricsAtTheEnd", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		done := Snapshot{TotalChunks: 2, ChunksDone: 2, EmployeesDone: 133, TotalEmployees: 133, Percent: 100, Elapsed: 7800 * time.Millisecond}
		require.NoError(t, s.Publish(ctx, testRun(12, 4), []int{0, 1}, done))
		require.NoError(t, s.PublishMetrics(ctx, testRun(12, 4), endMetrics))

		want := map[string]string{"consolidation_id": "12"}
		for k, v := range endMetricsHash {
			want[k] = v
		}
		require.Equal(t, want, hgetall(t, c, prefix+"metrics_cierre_4"))
		p := hgetall(t, c, prefix+"progress_cierre_4")
		require.Equal(t, "100", p["progreso_porcentaje"])
		require.Equal(t, p["total_chunks"], p["chunks_completados"])
		require.Equal(t, "0", p["eta_restante"])
	})

	t.Run("ExpireWithTheRunsTTL", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		snap := Snapshot{TotalChunks: 1, TotalEmployees: 5}
		require.NoError(t, s.Publish(ctx, testRun(13, 4), nil, snap))
		_, _, err := s.ChunkEnded(ctx, testRun(13, 4), ChunkEnd{Index: 0, Employees: 5, Records: 50})
		require.NoError(t, err)
		require.NoError(t, s.PublishMetrics(ctx, testRun(13, 4), endMetrics))
		for _, k := range []string{"run:13:done", "run:13:progress", "run:13:metrics", "progress_cierre_4", "metrics_cierre_4"} {
			ttl, err := c.PTTL(ctx, prefix+k).Result()
			require.NoError(t, err)
			require.Greater(t, ttl, testTTL-time.Minute, k)
			require.LessOrEqual(t, ttl, testTTL, k)
		}

		// A short TTL: the closing's hashes go with the run's keys.
		require.NoError(t, s.Publish(ctx, Run{ID: 14, ClosingID: 5, KeepFor: 200 * time.Millisecond}, nil, snap))
		require.NoError(t, s.PublishMetrics(ctx, Run{ID: 14, ClosingID: 5, KeepFor: 200 * time.Millisecond}, endMetrics))
		require.Eventually(t, func() bool {
			n, err := c.Exists(ctx, prefix+"progress_cierre_5", prefix+"metrics_cierre_5", prefix+"run:14:progress").Result()
			return err == nil && n == 0
		}, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("TwoClosingsDoNotMix", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		require.NoError(t, s.Publish(ctx, testRun(20, 5), nil, Snapshot{TotalChunks: 3, TotalEmployees: 30}))
		require.NoError(t, s.Publish(ctx, testRun(21, 6), nil, Snapshot{TotalChunks: 2, TotalEmployees: 20}))
		for _, m := range []struct {
			run, closing int64
			chunk        int
		}{{20, 5, 0}, {21, 6, 0}, {20, 5, 1}, {20, 5, 0}, {20, 5, 2}} {
			_, _, err := s.ChunkEnded(ctx, testRun(m.run, m.closing), ChunkEnd{Index: m.chunk, Employees: 10, Records: 100})
			require.NoError(t, err)
		}
		require.NoError(t, s.PublishMetrics(ctx, testRun(20, 5), endMetrics))

		a, b := hgetall(t, c, prefix+"progress_cierre_5"), hgetall(t, c, prefix+"progress_cierre_6")
		require.Equal(t, []string{"20", "3", "3", "30"}, []string{a["consolidation_id"], a["total_chunks"], a["chunks_completados"], a["empleados_procesados"]})
		require.Equal(t, []string{"21", "2", "1", "10"}, []string{b["consolidation_id"], b["total_chunks"], b["chunks_completados"], b["empleados_procesados"]})
		require.Equal(t, "20", hgetall(t, c, prefix+"metrics_cierre_5")["consolidation_id"])
		require.Empty(t, hgetall(t, c, prefix+"metrics_cierre_6"))
	})

	t.Run("LaterRunOfTheClosingOverwritesAndEarlierCannot", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		first := Snapshot{TotalChunks: 2, ChunksDone: 2, EmployeesDone: 20, TotalEmployees: 20, Percent: 100}
		require.NoError(t, s.Publish(ctx, testRun(30, 7), []int{0, 1}, first))
		require.NoError(t, s.PublishMetrics(ctx, testRun(30, 7), endMetrics))

		// The next run of the closing: its progress, and no metrics until its end.
		require.NoError(t, s.Publish(ctx, testRun(31, 7), nil, Snapshot{TotalChunks: 5, TotalEmployees: 50}))
		p := hgetall(t, c, prefix+"progress_cierre_7")
		require.Equal(t, []string{"31", "5", "0", "0"}, []string{p["consolidation_id"], p["total_chunks"], p["chunks_completados"], p["progreso_porcentaje"]})
		require.Empty(t, hgetall(t, c, prefix+"metrics_cierre_7"))

		// Late writes of the earlier run keep to the earlier run's own keys.
		require.NoError(t, s.Publish(ctx, testRun(30, 7), []int{0, 1}, first))
		_, _, err := s.ChunkEnded(ctx, testRun(30, 7), ChunkEnd{Index: 1, Employees: 10, Records: 100})
		require.NoError(t, err)
		require.NoError(t, s.Refresh(ctx, testRun(30, 7), first))
		require.NoError(t, s.PublishMetrics(ctx, testRun(30, 7), endMetrics))
		require.Equal(t, p, hgetall(t, c, prefix+"progress_cierre_7"))
		require.Empty(t, hgetall(t, c, prefix+"metrics_cierre_7"))
		require.Equal(t, "2", hgetall(t, c, prefix+"run:30:progress")["chunks_completados"])
	})

	t.Run("PublishedAgainAfterAFlush", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		require.NoError(t, s.Publish(ctx, testRun(40, 8), nil, Snapshot{TotalChunks: 4, TotalEmployees: 40}))
		_, _, err := s.ChunkEnded(ctx, testRun(40, 8), ChunkEnd{Index: 0, Employees: 10, Records: 100})
		require.NoError(t, err)

		// FLUSHALL of this test's key space (the server is shared with other tests).
		keys, err := c.Keys(ctx, prefix+"*").Result()
		require.NoError(t, err)
		require.Len(t, keys, 3)
		require.NoError(t, c.Del(ctx, keys...).Err())

		// A chunk ending on the flushed Redis sees the loss and writes no partial closing hash.
		added, hadHash, err := s.ChunkEnded(ctx, testRun(40, 8), ChunkEnd{Index: 1, Employees: 10, Records: 100})
		require.NoError(t, err)
		require.True(t, added)
		require.False(t, hadHash)
		require.Empty(t, hgetall(t, c, prefix+"progress_cierre_8"))

		// The engine then publishes the run again from the ledger.
		rebuilt := Snapshot{TotalChunks: 4, ChunksDone: 2, EmployeesDone: 20, TotalEmployees: 40, Percent: 50}
		require.NoError(t, s.Publish(ctx, testRun(40, 8), []int{0, 1}, rebuilt))
		require.Equal(t, map[string]string{
			"total_chunks": "4", "chunks_completados": "2", "progreso_porcentaje": "50", "empleados_procesados": "20",
			"tiempo_transcurrido": "0", "eta_restante": "0", "consolidation_id": "40",
		}, hgetall(t, c, prefix+"progress_cierre_8"))
		_, _, err = s.ChunkEnded(ctx, testRun(40, 8), ChunkEnd{Index: 2, Employees: 10, Records: 100})
		require.NoError(t, err)
		require.Equal(t, "3", hgetall(t, c, prefix+"progress_cierre_8")["chunks_completados"])
	})

	t.Run("PublishWithManyDoneChunks", func(t *testing.T) {
		t.Parallel()
		s, c, prefix := newTestStore(t)
		done := make([]int, 2500)
		for i := range done {
			done[i] = i
		}
		snap := Snapshot{TotalChunks: 3000, ChunksDone: len(done), TotalEmployees: 3000, EmployeesDone: 2500, Percent: 83.3}
		require.NoError(t, s.Publish(ctx, testRun(50, 9), done, snap))
		n, err := c.SCard(ctx, prefix+"run:50:done").Result()
		require.NoError(t, err)
		require.Equal(t, int64(2500), n)
		p := hgetall(t, c, prefix+"progress_cierre_9")
		require.Equal(t, "2500", p["chunks_completados"])
		require.Equal(t, "83.3", p["progreso_porcentaje"])
	})
}

func TestSplitChunkAgreesWithTheLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, client, prefix := newTestStore(t)
	start := Snapshot{TotalChunks: 2, TotalEmployees: 300}
	require.NoError(t, s.Publish(ctx, testRun(50, 9), nil, start))

	// Chunk 1 (150 employees) splits into chunks 2 and 3; the ledger then has four
	// chunks, one of them ended.
	for range 2 { // a repeated split counts once
		_, hadHash, err := s.ChunkEnded(ctx, testRun(50, 9), ChunkEnd{Index: 1, Halves: 2})
		require.NoError(t, err)
		require.True(t, hadHash)
	}
	got, ok := parseSnapshot(hgetall(t, client, prefix+"run:50:progress"))
	require.True(t, ok)
	require.Equal(t, 4, got.TotalChunks)
	require.Equal(t, 1, got.ChunksDone)
	require.Zero(t, got.EmployeesDone, "a split chunk consolidates nobody itself")
	require.Equal(t, "4", hgetall(t, client, prefix+"progress_cierre_9")["total_chunks"])

	// The halves and chunk 0 end: every chunk of the ledger is done.
	for _, c := range []int{0, 2, 3} {
		_, _, err := s.ChunkEnded(ctx, testRun(50, 9), ChunkEnd{Index: c, Employees: 75, Records: 750})
		require.NoError(t, err)
	}
	got, ok = parseSnapshot(hgetall(t, client, prefix+"run:50:progress"))
	require.True(t, ok)
	require.Equal(t, Snapshot{TotalChunks: 4, ChunksDone: 4, EmployeesDone: 225, TotalEmployees: 300, Records: 2250},
		Snapshot{TotalChunks: got.TotalChunks, ChunksDone: got.ChunksDone, EmployeesDone: got.EmployeesDone,
			TotalEmployees: got.TotalEmployees, Records: got.Records})

	t.Run("LostKeysAreLeftForTheRebuild", func(t *testing.T) {
		require.NoError(t, client.Del(ctx, prefix+"run:50:progress", prefix+"run:50:done").Err())
		added, hadHash, err := s.ChunkEnded(ctx, testRun(50, 9), ChunkEnd{Index: 3, Halves: 2})
		require.NoError(t, err)
		require.True(t, added)
		require.False(t, hadHash)
		_, ok := parseSnapshot(hgetall(t, client, prefix+"run:50:progress"))
		require.False(t, ok, "no partial hash passes for a whole one")
	})
}

func TestDjangoCacheKeyIsDjangosDefaultKeyFunction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cache DjangoCache
		want  string
	}{
		{DjangoCache{Version: 1}, ":1:consolidacion_progress_cierre_4"},
		{DjangoCache{KeyPrefix: "nomina", Version: 7}, "nomina:7:consolidacion_progress_cierre_4"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.cache.Key("consolidacion_progress_cierre_4"))
	}
	// A zero Version is Django's default.
	require.Equal(t, ":1:consolidacion_metrics_cierre_4", NewRedisStore(nil, "", DjangoCache{}).djangoKey(4, "metrics"))
}

func TestRedisStoreWritesTheDjangoCacheValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pgtest.NewRedis(t)
	c := r.Client(t)
	// The test's key space is its Redis prefix; Django's prefix goes before it.
	s := NewRedisStore(c, r.Prefix, DjangoCache{KeyPrefix: "nomina", Version: 3})
	progressKey, metricsKey := "nomina:3:"+r.Prefix+"progress_cierre_4", "nomina:3:"+r.Prefix+"metrics_cierre_4"
	get := func(key string) map[string]any {
		t.Helper()
		b, err := c.Get(ctx, key).Bytes()
		if err == redis.Nil {
			return nil
		}
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, json.Unmarshal(b, &v), string(b))
		return v
	}

	snap := Snapshot{TotalChunks: 3, TotalEmployees: 200, Elapsed: 3800 * time.Millisecond}
	require.NoError(t, s.Publish(ctx, testRun(50, 4), nil, snap))
	require.Equal(t, map[string]any{"total_chunks": 3.0, "chunks_completados": 0.0, "progreso_porcentaje": 0.0,
		"empleados_procesados": 0.0, "tiempo_transcurrido": 3.8, "eta_restante": 0.0, "eta_segundos": 0.0,
		"consolidation_id": 50.0}, get(progressKey))
	_, _, err := s.ChunkEnded(ctx, testRun(50, 4), ChunkEnd{Index: 0, Employees: 66, Records: 1584})
	require.NoError(t, err)
	snap = Snapshot{TotalChunks: 3, ChunksDone: 1, EmployeesDone: 66, TotalEmployees: 200, Percent: 33.3333,
		Elapsed: 4 * time.Second, ETA: 8049 * time.Millisecond}
	require.NoError(t, s.Refresh(ctx, testRun(50, 4), snap))
	p := get(progressKey)
	require.Equal(t, []any{1.0, 66.0, 33.3, 4.0, 8.0, 8.0}, []any{p["chunks_completados"], p["empleados_procesados"],
		p["progreso_porcentaje"], p["tiempo_transcurrido"], p["eta_restante"], p["eta_segundos"]})
	require.Nil(t, get(metricsKey), "no metrics before the run's end")

	require.NoError(t, s.PublishMetrics(ctx, testRun(50, 4), endMetrics))
	require.Equal(t, map[string]any{"consolidation_id": 50.0, "throughput_empleados_sec": 17.3,
		"throughput_registros_sec": 416.8, "memoria_pico_mb": 45.2, "cpu_promedio_percent": 23.5,
		"tiempo_total": 7.8, "workers_utilizados": 2.0}, get(metricsKey))
	for _, k := range []string{progressKey, metricsKey} {
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, testTTL-time.Minute, k)
	}

	// The closing's next run replaces its progress and drops the earlier metrics;
	// the earlier run cannot write over them.
	require.NoError(t, s.Publish(ctx, testRun(51, 4), nil, Snapshot{TotalChunks: 5, TotalEmployees: 50}))
	require.Equal(t, 51.0, get(progressKey)["consolidation_id"])
	require.Nil(t, get(metricsKey))
	require.NoError(t, s.PublishMetrics(ctx, testRun(50, 4), endMetrics))
	require.Nil(t, get(metricsKey))
	require.Equal(t, 51.0, get(progressKey)["consolidation_id"])
}
