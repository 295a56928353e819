package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/nominacl/consolidation/pkg/store"
)

// errLeaseLost stops a driver whose run lease another replica took over (or whose
// run ended elsewhere): it stops without finishing the run.
var errLeaseLost = errors.New("run lease lost to another replica")

// defaultReplica names this process in run leases: host, process id and a random
// suffix, so two processes on one host (or a restarted one) never share a name.
func defaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "coordinator"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// heartbeat renews the lease of epoch every third of LeaseTTL until ctx ends. A
// renewal that finds the epoch moved on stops the driver with errLeaseLost (lose
// ends what runs under the lease, stop the run's work); one that finds a cancel
// stored by any replica stops the run's work with errCancelled, and keeps beating
// while the driver finishes the run as cancelled. A renewal that fails on the
// database is logged and tried again at the next beat: the epoch, not the clock,
// fences the run, so a lease that expired but that nobody took is still ours.
func (e *Engine) heartbeat(ctx context.Context, runID, epoch int64, stop, lose context.CancelCauseFunc) {
	t := time.NewTicker(max(e.cfg.LeaseTTL/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, err := e.ledger.RenewLease(ctx, store.RunLease{RunID: runID, Epoch: epoch}, e.cfg.LeaseTTL)
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			// Lost to another replica, or ended with the run (by this driver, too).
			e.logger.InfoContext(ctx, "run lease ended or lost; driving stops", "consolidation_id", runID, "epoch", epoch)
			lose(errLeaseLost)
			stop(errLeaseLost)
			return
		case err != nil:
			if ctx.Err() == nil {
				e.logger.WarnContext(ctx, "renewing run lease", "consolidation_id", runID, "error", err.Error())
			}
		case s.CancelRequested:
			stop(errCancelled)
		}
	}
}

// releaseLease gives a run's lease up when its driver stops, so another replica
// may take the run at once; a failure only means waiting for the lease to expire.
func (e *Engine) releaseLease(ctx context.Context, runID, epoch int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := e.ledger.ReleaseLease(ctx, store.RunLease{RunID: runID, Epoch: epoch}); err != nil {
		e.logger.WarnContext(ctx, "releasing run lease", "consolidation_id", runID, "error", err.Error())
	}
}
