package dispatch

import (
	"slices"
	"strings"
	"time"
)

// WorkerState is what the dispatcher knows of one worker now.
type WorkerState struct {
	Addr string // the worker's address, as the ledger names it
	// Connection is the gRPC connection's state: IDLE, CONNECTING, READY,
	// TRANSIENT_FAILURE or SHUTDOWN.
	Connection string
	// Serving: connected, and its health has said SERVING (a worker without a
	// health service counts as saying it) and not NOT_SERVING since (draining).
	Serving    bool
	NotServing bool // its health said NOT_SERVING and has not said SERVING since
	// HealthHeard: its health has answered at least once.
	HealthHeard bool
	Slots       int // WORKER_MAX_IN_FLIGHT
	Busy        int // slots leased to a call now
	// CoolingUntil is set while the worker cools down after failed calls.
	CoolingUntil   time.Time
	FailuresInARow int
}

// Workers reports every worker the dispatcher knows, by address.
func (d *Dispatcher) Workers() []WorkerState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]WorkerState, 0, len(d.endpoints))
	now := time.Now()
	for _, ep := range d.endpoints {
		state := ep.conn.GetState()
		w := WorkerState{Addr: ep.addr, Connection: state.String(), NotServing: ep.notServing, HealthHeard: ep.heard,
			Serving: ep.healthy(), Slots: d.cfg.MaxInFlightPerWorker, Busy: ep.inFlight,
			FailuresInARow: ep.failures}
		if ep.coolUntil.After(now) {
			w.CoolingUntil = ep.coolUntil
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b WorkerState) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}
