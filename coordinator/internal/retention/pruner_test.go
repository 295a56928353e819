package retention

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestPrunerDropsOldRunsLedgersAndKeys runs a pass over a real PostgreSQL and
// Redis: a run that ended past the retention loses its ledger and keys and keeps
// its run row; a recent run and a running one keep everything.
func TestPrunerDropsOldRunsLedgersAndKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewPool(t)
	r := pgtest.NewRedis(t)
	rdb := r.Client(t)
	keys := progress.NewRedisStore(rdb, r.Prefix, progress.DjangoCache{})

	_, err := pool.Exec(ctx, `INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES (1, 3, 2026, $1)`, domain.EstadoVerificado)
	require.NoError(t, err)
	chunks := []store.ChunkRange{{Index: 0, FirstID: 1, LastID: 10, Employees: 10}, {Index: 1, FirstID: 11, LastID: 20, Employees: 10}}
	// start starts a run of closing 1 and gives it progress keys.
	start := func() int64 {
		c, err := store.GetClosing(ctx, pool, 1)
		require.NoError(t, err)
		id, err := store.StartRun(ctx, pool, store.NewRun{ClosingID: 1, Mode: domain.ModeFull, Policy: domain.PolicySeed,
			ChunkSize: 10, PreviousEstado: c.Estado, Deadline: time.Now().Add(time.Hour), TotalEmployees: 20, Chunks: chunks})
		require.NoError(t, err)
		run := progress.Run{ID: id, ClosingID: 1, KeepFor: time.Hour}
		require.NoError(t, keys.Publish(ctx, run, nil, progress.Snapshot{TotalChunks: 2, TotalEmployees: 20}))
		require.NoError(t, keys.PublishMetrics(ctx, run, progress.Metrics{TotalSeconds: 1}))
		return id
	}
	end := func(id int64, daysAgo int) {
		ok, err := store.FinishRun(ctx, pool, id, 0, store.RunEnd{Estado: domain.EstadoCancelada, Interrupted: true})
		require.NoError(t, err)
		require.True(t, ok)
		_, err = pool.Exec(ctx, `UPDATE consolidation_run SET started_at = now() - make_interval(days => $2),
			finished_at = now() - make_interval(days => $2) WHERE id = $1`, id, daysAgo)
		require.NoError(t, err)
	}
	old := start()
	end(old, 91)
	recent := start()
	end(recent, 89)
	running := start()

	p, err := NewPruner(slog.New(slog.DiscardHandler), Config{Batch: 1}, pool, keys)
	require.NoError(t, err)
	pruned, err := p.Pass(ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{old}, pruned)

	count := func(sql string, id int64) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql, id).Scan(&n))
		return n
	}
	exists := func(id int64) int64 {
		n, err := rdb.Exists(ctx, r.Prefix+"run:"+itoa(id)+":progress", r.Prefix+"run:"+itoa(id)+":metrics").Result()
		require.NoError(t, err)
		return n
	}
	require.Equal(t, 1, count("SELECT count(*) FROM consolidation_run WHERE id = $1", old))
	require.Zero(t, count("SELECT count(*) FROM consolidation_chunk WHERE run_id = $1", old))
	require.Zero(t, exists(old))
	for _, id := range []int64{recent, running} {
		require.Equal(t, 2, count("SELECT count(*) FROM consolidation_chunk WHERE run_id = $1", id), "run %d", id)
		require.EqualValues(t, 2, exists(id), "run %d", id)
	}

	// Two replicas' passes at once: harmless, and the ledger ends the same.
	_, err = pool.Exec(ctx, `UPDATE consolidation_run SET finished_at = now() - interval '91 days' WHERE id = $1`, recent)
	require.NoError(t, err)
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := p.Pass(context.WithoutCancel(ctx)); errs <- err }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	pruned, err = p.Pass(ctx)
	require.NoError(t, err)
	require.Empty(t, pruned)
	require.Zero(t, count("SELECT count(*) FROM consolidation_chunk WHERE run_id = $1", recent))
	require.Equal(t, 2, count("SELECT count(*) FROM consolidation_chunk WHERE run_id = $1", running))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
