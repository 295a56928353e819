package dispatch

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newTestDispatcher(t *testing.T, target string) *Dispatcher {
	t.Helper()
	// Connections are never used here: only slots are handed out.
	d, err := NewDispatcher(slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config{Target: target, MaxInFlightPerWorker: 2, CoolDown: time.Hour})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d
}

func TestAcquireRoundRobinAndBound(t *testing.T) {
	t.Parallel()
	d := newTestDispatcher(t, "127.0.0.1:1,127.0.0.1:2")
	ctx := context.Background()
	require.Equal(t, 4, d.Capacity())

	var leases []*Lease
	var workers []string
	for range 4 {
		l, err := d.Acquire(ctx)
		require.NoError(t, err)
		leases = append(leases, l)
		workers = append(workers, l.Worker())
	}
	require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"}, workers)

	// Every slot is taken: the next Acquire waits, and gets the slot freed.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := d.Acquire(short)
	require.Error(t, err)

	got := make(chan *Lease)
	go func() {
		l, _ := d.Acquire(ctx)
		got <- l
	}()
	leases[1].Release(false)
	select {
	case l := <-got:
		require.Equal(t, "127.0.0.1:2", l.Worker())
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter was not woken by a release")
	}
}

func TestFailedWorkerCoolsDown(t *testing.T) {
	t.Parallel()
	d := newTestDispatcher(t, "127.0.0.1:1,127.0.0.1:2")
	ctx := context.Background()
	l, err := d.Acquire(ctx)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:1", l.Worker())
	l.Release(true) // its call failed

	for range 4 {
		l, err := d.Acquire(ctx)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:2", l.Worker(), "the failed worker is passed over while cooling down")
		l.Release(false)
	}
}

func TestEveryWorkerCoolingStillServes(t *testing.T) {
	t.Parallel()
	d := newTestDispatcher(t, "127.0.0.1:1")
	l, err := d.Acquire(context.Background())
	require.NoError(t, err)
	l.Release(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err = d.Acquire(ctx)
	require.NoError(t, err, "with every worker cooling down, one is tried rather than none")
	require.Equal(t, "127.0.0.1:1", l.Worker())
}

func TestTargetErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "localhost", "dns:///no-port", "a:1,,b:2"} {
		_, err := NewDispatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Target: bad})
		require.Error(t, err, bad)
	}
}
