package dispatch

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func newTestDispatcher(t *testing.T, target string) *Dispatcher {
	t.Helper()
	// Connections are never used here: only slots are handed out.
	return newDispatcherWith(t, Config{Target: target, MaxInFlightPerWorker: 2, CoolDown: time.Hour})
}

func newDispatcherWith(t *testing.T, cfg Config) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d
}

// waiting is the number of Acquire calls waiting for a slot.
func (d *Dispatcher) waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, q := range d.queues {
		n += len(q.waiters)
	}
	return n
}

// grant is a slot given to a run.
type grant struct {
	run  int64
	slot *Slot
}

// acquireInBackground starts Acquire calls for runs of one size, one at a time
// and each waiting before the next asks (so they queue in this order), and sends
// each slot given on got.
func acquireInBackground(t *testing.T, d *Dispatcher, got chan<- grant, runs ...int64) {
	t.Helper()
	acquireSized(t, d, got, 0, runs...)
}

// acquireSized is acquireInBackground for runs of size employees.
func acquireSized(t *testing.T, d *Dispatcher, got chan<- grant, size int, runs ...int64) {
	t.Helper()
	for _, run := range runs {
		before := d.waiting()
		go func() {
			l, err := d.Acquire(t.Context(), run, size)
			if err == nil {
				got <- grant{run, l}
			}
		}()
		require.Eventually(t, func() bool { return d.waiting() == before+1 }, 5*time.Second, time.Millisecond)
	}
}

// nextGrant waits for the next slot given.
func nextGrant(t *testing.T, got <-chan grant) grant {
	t.Helper()
	select {
	case g := <-got:
		return g
	case <-time.After(5 * time.Second):
		t.Fatal("no slot was given")
		return grant{}
	}
}

func TestAcquireRoundRobinAndBound(t *testing.T) {
	t.Parallel()
	d := newTestDispatcher(t, "127.0.0.1:1,127.0.0.1:2")
	ctx := context.Background()
	d.mu.Lock()
	require.Equal(t, 4, len(d.endpoints)*d.cfg.MaxInFlightPerWorker, "two workers of two slots each")
	d.mu.Unlock()

	var slots []*Slot
	var workers []string
	for range 4 {
		l, err := d.Acquire(ctx, 1, 0)
		require.NoError(t, err)
		slots = append(slots, l)
		workers = append(workers, l.Worker())
	}
	require.Equal(t, []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"}, workers)

	// Every slot is taken: the next Acquire waits, and gets the slot freed.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := d.Acquire(short, 1, 0)
	require.Error(t, err)

	got := make(chan *Slot)
	go func() {
		l, _ := d.Acquire(ctx, 1, 0)
		got <- l
	}()
	slots[1].Release(false)
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
	l, err := d.Acquire(ctx, 1, 0)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:1", l.Worker())
	l.Release(true) // its call failed

	for range 4 {
		l, err := d.Acquire(ctx, 1, 0)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:2", l.Worker(), "the failed worker is passed over while cooling down")
		l.Release(false)
	}
}

func TestEveryWorkerCoolingStillServes(t *testing.T) {
	t.Parallel()
	d := newTestDispatcher(t, "127.0.0.1:1")
	l, err := d.Acquire(context.Background(), 1, 0)
	require.NoError(t, err)
	l.Release(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err = d.Acquire(ctx, 1, 0)
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

// passOn reslots the slot held n times, each time holding the slot given next,
// and returns the runs given them, in order.
func passOn(t *testing.T, held **Slot, got <-chan grant, n int) []int64 {
	t.Helper()
	var order []int64
	for range n {
		(*held).Release(false)
		g := nextGrant(t, got)
		order = append(order, g.run)
		*held = g.slot
	}
	return order
}

func TestSlotsGoToRunsInTurn(t *testing.T) {
	t.Parallel()
	// One slot in all: each release gives it to the next run in turn.
	d := newDispatcherWith(t, Config{Target: "127.0.0.1:1", MaxInFlightPerWorker: 1, CoolDown: time.Hour})
	held, err := d.Acquire(t.Context(), 1, 0)
	require.NoError(t, err)

	t.Run("RunThatAsksLaterGetsEveryOtherSlot", func(t *testing.T) {
		// Run 1 (a large closing) asks for four slots before run 2 asks for two.
		got := make(chan grant, 6)
		acquireInBackground(t, d, got, 1, 1, 1, 1, 2, 2)
		require.Equal(t, []int64{1, 2, 1, 2, 1, 1}, passOn(t, &held, got, 6))
	})

	t.Run("ThreeRunsInterleave", func(t *testing.T) {
		got := make(chan grant, 8)
		acquireInBackground(t, d, got, 7, 7, 7, 8, 8, 9, 9, 9)
		require.Equal(t, []int64{7, 8, 9, 7, 8, 9, 7, 9}, passOn(t, &held, got, 8))
	})

	t.Run("SmallerRunFirst", func(t *testing.T) {
		// Run 1 (a large closing) asks for four slots before run 2, smaller, and
		// run 3, smaller still, ask for two each: the smallest is served first.
		got := make(chan grant, 8)
		acquireSized(t, d, got, 100_000, 1, 1, 1, 1)
		acquireSized(t, d, got, 500, 2, 2)
		acquireSized(t, d, got, 133, 3, 3)
		require.Equal(t, []int64{3, 3, 2, 2, 1, 1, 1, 1}, passOn(t, &held, got, 8))
	})

	t.Run("ExpectedAsksKeepTheirPlace", func(t *testing.T) {
		// Run 2, small, said it will ask three times; between its asks a slot
		// freed is set aside for it, not given to run 1, larger, which waits.
		done := d.Expect(2, 133, 3)
		got := make(chan grant, 4)
		acquireSized(t, d, got, 100_000, 1)
		held.Release(false) // nobody small is asking at this instant
		require.Never(t, func() bool { return len(got) > 0 }, 50*time.Millisecond, time.Millisecond,
			"the slot went to the larger run while the smaller one had asks to come")
		for range 3 {
			l, err := d.Acquire(t.Context(), 2, 133)
			require.NoError(t, err)
			require.Empty(t, got)
			l.Release(false) // set aside again for the next ask, while one is to come
		}
		g := nextGrant(t, got) // the asks said are made: the slot goes on
		require.Equal(t, int64(1), g.run)
		held = g.slot
		done()
		done() // twice is once
	})

	t.Run("DoneGivesBackTheSlotsSetAside", func(t *testing.T) {
		done := d.Expect(2, 133, 5)
		got := make(chan grant, 1)
		acquireSized(t, d, got, 100_000, 1)
		held.Release(false)
		require.Never(t, func() bool { return len(got) > 0 }, 50*time.Millisecond, time.Millisecond)
		done() // the driver stopped asking: its slot goes to run 1
		g := nextGrant(t, got)
		require.Equal(t, int64(1), g.run)
		held = g.slot
		d.mu.Lock()
		require.Empty(t, d.queues, "nothing is kept of runs that neither wait nor expect")
		d.mu.Unlock()
	})

	t.Run("GivingUpLeavesTheTurns", func(t *testing.T) {
		got := make(chan grant, 2)
		acquireInBackground(t, d, got, 3)
		short, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error, 1)
		go func() {
			_, err := d.Acquire(short, 4, 0)
			gaveUp <- err
		}()
		require.Eventually(t, func() bool { return d.waiting() == 2 }, 5*time.Second, time.Millisecond)
		acquireInBackground(t, d, got, 5)
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)
		require.Equal(t, 2, d.waiting())

		require.Equal(t, []int64{3, 5}, passOn(t, &held, got, 2), "run 4 gave up: its turn is skipped")
		require.Zero(t, d.waiting())
	})
	held.Release(false)
}

// healthServer is a gRPC server on loopback with only the health service.
type healthServer struct {
	addr   string
	health *health.Server
	grpc   *grpc.Server
}

func startHealthServer(t *testing.T) *healthServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &healthServer{addr: l.Addr().String(), health: health.NewServer(), grpc: grpc.NewServer()}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	go func() { _ = s.grpc.Serve(l) }()
	t.Cleanup(s.grpc.Stop)
	return s
}

// workersOf acquires n slots, one after another, each released at once, and returns
// the set of workers given.
func workersOf(t *testing.T, d *Dispatcher, n int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		l, err := d.Acquire(t.Context(), 1, 0)
		require.NoError(t, err)
		seen[l.Worker()] = true
		l.Release(false)
	}
	return seen
}

func TestNotServingWorkerIsPassedOver(t *testing.T) {
	t.Parallel()
	draining, serving := startHealthServer(t), startHealthServer(t)
	draining.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	d := newDispatcherWith(t, Config{Target: draining.addr + "," + serving.addr, HealthEvery: 20 * time.Millisecond})

	require.Eventually(t, func() bool {
		return !workersOf(t, d, 4)[draining.addr]
	}, 10*time.Second, 10*time.Millisecond, "the NOT_SERVING worker is passed over")
	require.Equal(t, map[string]bool{serving.addr: true}, workersOf(t, d, 10))

	t.Run("UntilItServesAgain", func(t *testing.T) {
		draining.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		require.Eventually(t, func() bool {
			return workersOf(t, d, 4)[draining.addr]
		}, 10*time.Second, 10*time.Millisecond, "the worker serving again takes calls")
	})

	t.Run("WaitsWhileNoWorkerServes", func(t *testing.T) {
		draining.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		serving.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		require.Eventually(t, func() bool {
			short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			defer cancel()
			l, err := d.Acquire(short, 1, 0)
			if err == nil {
				l.Release(false)
			}
			return err != nil
		}, 10*time.Second, 10*time.Millisecond, "no slot while every worker is NOT_SERVING")

		got := make(chan grant, 1)
		acquireInBackground(t, d, got, 1)
		serving.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		g := nextGrant(t, got)
		require.Equal(t, serving.addr, g.slot.Worker(), "the waiter is served when a worker serves again")
		g.slot.Release(false)
	})

	t.Run("DrainingWorkerStopsGracefully", func(t *testing.T) {
		// A draining worker's graceful stop waits for every open call: the
		// dispatcher's health watch must not be one of them.
		serving.health.Shutdown() // NOT_SERVING, as grpcx.Server.Serve does on SIGTERM
		stopped := make(chan struct{})
		go func() {
			serving.grpc.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("the worker's graceful stop waited on the dispatcher's health watch")
		}
	})
}
