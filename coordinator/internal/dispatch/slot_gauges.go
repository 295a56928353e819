package dispatch

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/connectivity"
)

// observeSlots registers the dispatcher's gauges: consolidation_worker_slots
// (the call slots of the workers known), consolidation_worker_slots_busy (those
// leased to a chunk call) and consolidation_workers_healthy (workers connected
// whose health does not say NOT_SERVING). Close unregisters them.
func (d *Dispatcher) observeSlots() error {
	meter := otel.Meter("consolidation/coordinator")
	slots, err := meter.Int64ObservableGauge("consolidation_worker_slots",
		metric.WithDescription("Chunk call slots of the workers this coordinator knows (workers × WORKER_MAX_IN_FLIGHT)"))
	if err != nil {
		return err
	}
	busy, err := meter.Int64ObservableGauge("consolidation_worker_slots_busy",
		metric.WithDescription("Chunk call slots leased to a call"))
	if err != nil {
		return err
	}
	healthy, err := meter.Int64ObservableGauge("consolidation_workers_healthy",
		metric.WithDescription("Workers connected whose health does not say NOT_SERVING"))
	if err != nil {
		return err
	}
	d.metrics, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := d.slotState()
		o.ObserveInt64(slots, int64(s.slots))
		o.ObserveInt64(busy, int64(s.busy))
		o.ObserveInt64(healthy, int64(s.healthy))
		return nil
	}, slots, busy, healthy)
	return err
}

// slotState is what the dispatcher's gauges report.
type slotState struct{ slots, busy, healthy int }

func (d *Dispatcher) slotState() slotState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := slotState{slots: len(d.endpoints) * d.cfg.MaxInFlightPerWorker}
	for _, ep := range d.endpoints {
		s.busy += ep.inFlight
		if ep.healthy() {
			s.healthy++
		}
	}
	return s
}

// healthy: connected, and its health has said it serves (not only not yet said
// otherwise). Under Dispatcher.mu.
func (ep *endpoint) healthy() bool {
	return ep.heard && !ep.notServing && ep.conn.GetState() == connectivity.Ready
}
