package dispatch

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// watchHealth follows a worker's grpc.health.v1 status until ctx ends, so that
// Acquire passes over a worker that says NOT_SERVING (it is draining) until it says
// SERVING again. While the worker serves, a Watch stream reports each change at
// once; on NOT_SERVING the stream is closed (an open stream would hold up the
// worker's graceful stop) and Check is asked every HealthEvery instead. A broken
// stream leaves the last status known and is opened again; a worker without a
// health service is taken as serving.
func (d *Dispatcher) watchHealth(ctx context.Context, ep *endpoint) {
	for {
		err := d.watchUntilNotServing(ctx, ep)
		switch {
		case ctx.Err() != nil:
			return
		case status.Code(err) == codes.Unimplemented:
			d.setServing(ep, true)
			return
		case err == nil: // draining
			if !d.pollUntilServing(ctx, ep) {
				return
			}
		default:
			if !sleepCtx(ctx, d.cfg.HealthEvery) {
				return
			}
		}
	}
}

// watchUntilNotServing records each status the worker's Watch stream sends and
// returns nil at the first that is not SERVING, or the stream's error.
func (d *Dispatcher) watchUntilNotServing(ctx context.Context, ep *endpoint) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the stream
	// WaitForReady: a worker not reachable yet is waited for, not retried in a loop.
	stream, err := ep.health.Watch(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		serving := resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		d.setServing(ep, serving)
		if !serving {
			return nil
		}
	}
}

// pollUntilServing asks the worker's health every HealthEvery until it says
// SERVING (true) or ctx ends (false).
func (d *Dispatcher) pollUntilServing(ctx context.Context, ep *endpoint) bool {
	for sleepCtx(ctx, d.cfg.HealthEvery) {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.HealthEvery)
		resp, err := ep.health.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			d.setServing(ep, true)
			return true
		}
	}
	return false
}

// setServing records a worker's health; a worker serving again takes waiters.
func (d *Dispatcher) setServing(ep *endpoint, serving bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep.heard = true
	if ep.notServing == !serving {
		return
	}
	ep.notServing = !serving
	if serving {
		d.logger.Info("worker serving", "worker", ep.addr)
		d.serveLocked()
		return
	}
	d.logger.Info("worker not serving, passed over", "worker", ep.addr)
}

// sleepCtx waits for d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
