package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// acquireInOrder starts acquire calls for runs of one size, each queued before
// the next asks, and sends each run given a slot on the channel returned.
func acquireInOrder(t *testing.T, s *runSlots, runs ...int64) <-chan int64 {
	t.Helper()
	got := make(chan int64, len(runs))
	sizes := make([]int, len(runs))
	acquireSizedInOrder(t, s, got, runs, sizes)
	return got
}

// acquireSizedInOrder is acquireInOrder with each run's size, sending on got.
func acquireSizedInOrder(t *testing.T, s *runSlots, got chan<- int64, runs []int64, sizes []int) {
	t.Helper()
	for i, run := range runs {
		before := s.queued()
		go func() {
			if s.acquire(t.Context(), run, sizes[i]) == nil {
				got <- run
			}
		}()
		require.Eventually(t, func() bool { return s.queued() == before+1 }, 5*time.Second, time.Millisecond)
	}
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
		require.NoError(t, s.acquire(t.Context(), 1, 0))
		require.False(t, s.tryAcquire())
		short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, s.acquire(short, 2, 0), context.DeadlineExceeded)
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

	t.Run("SmallestFirst", func(t *testing.T) {
		t.Parallel()
		s := newRunSlots(1)
		require.True(t, s.tryAcquire())
		// A large closing started first, small ones after it: the small ones are
		// driven first, the earliest of one size first.
		got := make(chan int64, 4)
		acquireSizedInOrder(t, s, got, []int64{1, 2, 3, 4}, []int{100_000, 800, 133, 133})
		var order []int64
		for range 4 {
			s.release()
			order = append(order, nextRun(t, got))
		}
		require.Equal(t, []int64{3, 4, 2, 1}, order)
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
		slots, err := e.takeSlot(t.Context(), t.Context(), 1, 0) // a long run holds the only slot
		require.NoError(t, err)
		require.Same(t, e.runs, slots)

		runCtx, cancel := context.WithCancelCause(t.Context())
		took := make(chan *runSlots, 1)
		go func() {
			slots, err := e.takeSlot(runCtx, t.Context(), 2, 0)
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
		_, err := e.takeSlot(t.Context(), t.Context(), 1, 0)
		require.NoError(t, err)

		engineCtx, stop := context.WithCancel(t.Context())
		runCtx, cancel := context.WithCancelCause(t.Context())
		context.AfterFunc(engineCtx, func() { cancel(errEngineStopped) }) // as launch does
		done := make(chan error, 1)
		go func() {
			_, err := e.takeSlot(runCtx, engineCtx, 2, 0)
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
