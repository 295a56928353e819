package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
		require.Eventually(t, func() bool { return e.runs.Queued() == 1 }, 5*time.Second, time.Millisecond)
		cancel(errCancelled)
		select {
		case slots := <-took:
			require.Same(t, e.ends, slots, "a cancelled run does not wait behind the long one")
		case <-time.After(5 * time.Second):
			t.Fatal("the cancelled run still waits")
		}
		require.Zero(t, e.runs.Queued())
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
		require.Eventually(t, func() bool { return e.runs.Queued() == 1 }, 5*time.Second, time.Millisecond)
		stop()
		select {
		case err := <-done:
			require.ErrorIs(t, err, errEngineStopped)
		case <-time.After(5 * time.Second):
			t.Fatal("a run waiting for a slot held up the engine's stop")
		}
	})
}
