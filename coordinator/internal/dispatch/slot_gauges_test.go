package dispatch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestSlotState(t *testing.T) {
	t.Parallel()
	serving, draining := startHealthServer(t), startHealthServer(t)
	draining.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// The third worker is never reachable.
	d := newDispatcherWith(t, Config{Target: serving.addr + "," + draining.addr + ",127.0.0.1:1",
		MaxInFlightPerWorker: 3, HealthEvery: 20 * time.Millisecond})
	require.Eventually(t, func() bool { return d.slotState().healthy == 1 }, 10*time.Second, 10*time.Millisecond,
		"only the worker connected and serving counts as healthy")

	a, err := d.Acquire(t.Context(), 1, 0)
	require.NoError(t, err)
	b, err := d.Acquire(t.Context(), 2, 0)
	require.NoError(t, err)
	require.Equal(t, slotState{slots: 9, busy: 2, healthy: 1}, d.slotState())
	a.Release(false)
	b.Release(true)
	require.Equal(t, 0, d.slotState().busy, "released slots are no longer busy, failed or not")

	serving.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	require.Eventually(t, func() bool { return d.slotState().healthy == 0 }, 10*time.Second, 10*time.Millisecond,
		"a worker draining is no longer healthy")
}
