package slots_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/slots"
)

// acquireInOrder starts Acquire calls of the given keys and sizes, each queued
// before the next asks, and sends each index given a slot on the channel returned.
func acquireInOrder(t *testing.T, s *slots.BySize, keys []int64, sizes []int) <-chan int {
	t.Helper()
	got := make(chan int, len(keys))
	for i, key := range keys {
		before := s.Queued()
		go func() {
			if s.Acquire(t.Context(), key, sizes[i]) == nil {
				got <- i
			}
		}()
		require.Eventually(t, func() bool { return s.Queued() == before+1 }, 5*time.Second, time.Millisecond)
	}
	return got
}

// order releases one slot per waiter and returns the indexes in the order they
// were given one.
func order(t *testing.T, s *slots.BySize, got <-chan int, n int) []int {
	t.Helper()
	var order []int
	for range n {
		s.Release()
		select {
		case i := <-got:
			order = append(order, i)
		case <-time.After(5 * time.Second):
			t.Fatalf("no slot was given after %d of %d", len(order), n)
		}
	}
	return order
}

func TestBySize(t *testing.T) {
	t.Parallel()

	t.Run("BoundHolds", func(t *testing.T) {
		t.Parallel()
		s := slots.New(2)
		require.True(t, s.TryAcquire())
		require.NoError(t, s.Acquire(t.Context(), 1, 0))
		require.False(t, s.TryAcquire())
		short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, s.Acquire(short, 2, 0), context.DeadlineExceeded)
		require.Zero(t, s.Queued(), "a waiter that gave up no longer waits")
		s.Release()
		require.True(t, s.TryAcquire())
	})

	t.Run("LowestKeyFirst", func(t *testing.T) {
		t.Parallel()
		s := slots.New(1)
		require.True(t, s.TryAcquire())
		// Runs found unfinished in another order (a restart) are driven by start.
		got := acquireInOrder(t, s, []int64{9, 7, 8}, []int{0, 0, 0})
		require.Equal(t, []int{1, 2, 0}, order(t, s, got, 3))
	})

	t.Run("SmallestFirst", func(t *testing.T) {
		t.Parallel()
		s := slots.New(1)
		require.True(t, s.TryAcquire())
		// A large closing started first, small ones after it: the small ones go
		// first, the earliest of one size first.
		got := acquireInOrder(t, s, []int64{1, 2, 3, 4}, []int{100_000, 800, 133, 133})
		require.Equal(t, []int{2, 3, 1, 0}, order(t, s, got, 4))
	})

	t.Run("OneKeyInTheOrderAsked", func(t *testing.T) {
		t.Parallel()
		s := slots.New(1)
		require.True(t, s.TryAcquire())
		// A worker's chunks: several of one run wait beside a smaller run's.
		got := acquireInOrder(t, s, []int64{5, 5, 6, 5}, []int{1000, 1000, 50, 1000})
		require.Equal(t, []int{2, 0, 1, 3}, order(t, s, got, 4))
	})

	t.Run("GivenAsTheWaitEndsIsHandedOn", func(t *testing.T) {
		t.Parallel()
		s := slots.New(1)
		require.True(t, s.TryAcquire())
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error, 1)
		go func() { gaveUp <- s.Acquire(ctx, 1, 10) }()
		require.Eventually(t, func() bool { return s.Queued() == 1 }, 5*time.Second, time.Millisecond)
		got := acquireInOrder(t, s, []int64{2}, []int{20})
		cancel()
		s.Release() // to the first waiter, or, if it has given up, to the second
		if err := <-gaveUp; err == nil {
			s.Release() // the first waiter took it after all: give it back
		}
		select {
		case i := <-got:
			require.Equal(t, 0, i)
		case <-time.After(5 * time.Second):
			t.Fatal("the slot did not reach the waiter still waiting")
		}
		require.Zero(t, s.Queued())
	})
}
