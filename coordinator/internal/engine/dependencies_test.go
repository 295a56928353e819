package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/engine/ledgertest"
)

// pingLedger, pingProgress and pingWorkers answer the dependency check with ping.
type pingLedger struct {
	*ledgertest.Ledger
	ping func(context.Context) error
}

func (l pingLedger) Ping(ctx context.Context) error { return l.ping(ctx) }

type pingProgress struct {
	*memProgress
	ping func(context.Context) error
}

func (p pingProgress) Ping(ctx context.Context) error { return p.ping(ctx) }

type pingWorkers struct {
	*fakeWorkers
	ping func(context.Context) error
}

func (w pingWorkers) Healthy(ctx context.Context) (int, error) {
	if err := w.ping(ctx); err != nil {
		return 0, err
	}
	return 1, nil
}

func dependencyEngine(t *testing.T, pg, redis, workers func(context.Context) error) *Engine {
	t.Helper()
	l := ledgertest.New(ledgertest.NewClock(time.Now()))
	e, err := newEngine(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Replica: "r"}, pingLedger{l, pg}, nil,
		pingWorkers{&fakeWorkers{ledger: l, slots: make(chan struct{}, 1)}, workers}, pingProgress{newMemProgress(), redis})
	require.NoError(t, err)
	return e
}

func TestCheckDependencies(t *testing.T) {
	t.Parallel()

	// Each answers only once all three have been asked (or the check's own
	// timeout ends the wait, failing it): asked one after another, the first
	// would wait out the timeout and the start would be refused.
	t.Run("AsksAllThreeAtOnce", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		asked := 0
		all := make(chan struct{})
		ping := func(ctx context.Context) error {
			mu.Lock()
			if asked++; asked == 3 {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		require.NoError(t, dependencyEngine(t, ping, ping, ping).checkDependencies(t.Context()))
	})

	down := errors.New("down")
	ok := func(context.Context) error { return nil }
	fails := func(context.Context) error { return down }
	for _, tt := range []struct {
		name               string
		pg, redis, workers func(context.Context) error
		dependency         string
	}{
		{"PostgreSQLFirst", fails, fails, fails, "postgresql"},
		{"ThenRedis", ok, fails, fails, "redis"},
		{"ThenTheWorkers", ok, ok, fails, "workers"},
	} {
		t.Run("Refuses"+tt.name, func(t *testing.T) {
			t.Parallel()
			err := dependencyEngine(t, tt.pg, tt.redis, tt.workers).checkDependencies(t.Context())
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, KindUnavailable, e.Kind)
			require.Equal(t, tt.dependency, e.Metadata["dependency"])
		})
	}
}
