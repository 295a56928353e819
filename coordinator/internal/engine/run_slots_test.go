package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// acquireInOrder starts acquire calls for runs, each queued before the next asks,
// and sends each run given a slot on the channel returned.
func acquireInOrder(t *testing.T, s *runSlots, runs ...int64) <-chan int64 {
	t.Helper()
	got := make(chan int64, len(runs))
	for _, run := range runs {
		before := s.queued()
		go func() {
			if s.acquire(t.Context(), run) == nil {
				got <- run
			}
		}()
		require.Eventually(t, func() bool { return s.queued() == before+1 }, 5*time.Second, time.Millisecond)
	}
	return got
}

func nextRun(t *testing.T, got <-chan int64) int64 {
	t.Helper()
	select {
	case run := <-got:
		return run
	case <-time.After(5 * time.Second):
		t.Fatal("no slot was given")
		return 0
	}
}

func TestRunSlots(t *testing.T) {
	t.Parallel()

	t.Run("BoundHolds", func(t *testing.T) {
		t.Parallel()
		s := newRunSlots(2)
		require.True(t, s.tryAcquire())
		require.NoError(t, s.acquire(t.Context(), 1))
		require.False(t, s.tryAcquire())
		short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, s.acquire(short, 2), context.DeadlineExceeded)
		require.Zero(t, s.queued(), "a run that gave up no longer waits")
		s.release()
		require.True(t, s.tryAcquire())
	})

	t.Run("EarliestStartedFirst", func(t *testing.T) {
		t.Parallel()
		s := newRunSlots(1)
		require.True(t, s.tryAcquire())
		// Found unfinished in another order (a restart), they are driven by start.
		got := acquireInOrder(t, s, 9, 7, 8)
		var order []int64
		for range 3 {
			s.release()
			order = append(order, nextRun(t, got))
		}
		require.Equal(t, []int64{7, 8, 9}, order)
	})
}

func TestTakeSlot(t *testing.T) {
	t.Parallel()
	newTestEngine := func() *Engine {
		return &Engine{logger: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: Config{MaxRuns: 1},
			runs: newRunSlots(1), ends: newRunSlots(1)}
	}

	t.Run("CancelledWhileWaitingEndsInItsOwnSlot", func(t *testing.T) {
		t.Parallel()
		e := newTestEngine()
		slots, err := e.takeSlot(t.Context(), t.Context(), 1) // a long run holds the only slot
		require.NoError(t, err)
		require.Same(t, e.runs, slots)

		runCtx, cancel := context.WithCancelCause(t.Context())
		took := make(chan *runSlots, 1)
		go func() {
			slots, err := e.takeSlot(runCtx, t.Context(), 2)
			if err == nil {
				took <- slots
			}
		}()
		require.Eventually(t, func() bool { return e.runs.queued() == 1 }, 5*time.Second, time.Millisecond)
		cancel(errCancelled)
		select {
		case slots := <-took:
			require.Same(t, e.ends, slots, "a cancelled run does not wait behind the long one")
		case <-time.After(5 * time.Second):
			t.Fatal("the cancelled run still waits")
		}
		require.Zero(t, e.runs.queued())
	})

	t.Run("EngineStoppingEndsTheWait", func(t *testing.T) {
		t.Parallel()
		e := newTestEngine()
		_, err := e.takeSlot(t.Context(), t.Context(), 1)
		require.NoError(t, err)

		engineCtx, stop := context.WithCancel(t.Context())
		runCtx, cancel := context.WithCancelCause(t.Context())
		context.AfterFunc(engineCtx, func() { cancel(errEngineStopped) }) // as launch does
		done := make(chan error, 1)
		go func() {
			_, err := e.takeSlot(runCtx, engineCtx, 2)
			done <- err
		}()
		require.Eventually(t, func() bool { return e.runs.queued() == 1 }, 5*time.Second, time.Millisecond)
		stop()
		select {
		case err := <-done:
			require.ErrorIs(t, err, errEngineStopped)
		case <-time.After(5 * time.Second):
			t.Fatal("a run waiting for a slot held up the engine's stop")
		}
	})
}
