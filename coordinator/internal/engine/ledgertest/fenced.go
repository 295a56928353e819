package ledgertest

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// The operations fenced by a run's lease epoch or a chunk's attempt token, and
// the run's end: each does what the pkg/store function of the same name does.

// AcquireLease makes owner the run's driver for ttl when nobody holds a live
// lease, owner holds it, or the run is past its deadline by ttl; the epoch moves
// on. ok is false for a run that has ended or another owner holds.
func (l *Ledger) AcquireLease(_ context.Context, runID int64, owner string, ttl time.Duration) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	now := l.clock.Now()
	if !ok || r.Finished() {
		return 0, false, nil
	}
	if r.leaseOwner != "" && r.leaseOwner != owner && r.leaseExpires.After(now) && r.Deadline.Add(ttl).After(now) {
		return 0, false, nil
	}
	r.leaseOwner, r.leaseExpires = owner, now.Add(ttl)
	r.leaseEpoch++
	return r.leaseEpoch, true, nil
}

// RenewLease extends the lease of the caller's epoch by ttl; ErrLeaseLost once
// the epoch moved on or the run ended.
func (l *Ledger) RenewLease(_ context.Context, lease store.RunLease, ttl time.Duration) (store.LeaseState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, owned := l.owned(lease)
	if !owned || r.Finished() {
		return store.LeaseState{}, store.ErrLeaseLost
	}
	r.leaseExpires = l.clock.Now().Add(ttl)
	return store.LeaseState{CancelRequested: r.CancelRequested, Deadline: r.Deadline}, nil
}

// ReleaseLease gives up the lease of the caller's epoch; the epoch stays.
func (l *Ledger) ReleaseLease(_ context.Context, lease store.RunLease) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, owned := l.owned(lease)
	if !owned {
		return false, nil
	}
	r.leaseOwner, r.leaseExpires = "", time.Time{}
	return true, nil
}

// DispatchChunk hands a pending or running chunk of an open run to a new
// attempt with p.Token; ErrLeaseLost when the run is open and the epoch moved
// on; ok false when the chunk ended or the run ended or is cancelling.
func (l *Ledger) DispatchChunk(_ context.Context, p store.DispatchChunkParams) (int, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, owned := l.owned(p.RunLease)
	if r == nil {
		return 0, false, nil
	}
	open := !r.Finished() && !r.CancelRequested
	if open && !owned {
		return 0, false, fmt.Errorf("dispatching chunk %d of consolidation %d: %w", p.Index, p.RunID, store.ErrLeaseLost)
	}
	c := r.chunk(p.Index)
	if c == nil || !open || c.Status != domain.ChunkPending && c.Status != domain.ChunkRunning {
		return 0, false, nil
	}
	c.Status, c.token, c.Worker = domain.ChunkRunning, p.Token, p.Worker
	c.Attempts++
	r.attempts = append(r.attempts, &attempt{index: p.Index, number: c.Attempts, token: p.Token, worker: p.Worker})
	return c.Attempts, true, nil
}

// EndAttempt records how an open attempt ended.
func (l *Ledger) EndAttempt(_ context.Context, p store.EndAttemptParams) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[p.RunID]
	if !ok {
		return nil
	}
	for _, a := range r.attempts {
		if a.index == p.Index && a.number == p.Attempt && !a.finished {
			a.finished, a.outcome, a.err = true, p.Outcome, p.Error
		}
	}
	return nil
}

// FailChunk fails a running chunk for good while p.Token is its attempt;
// ErrLeaseLost when the epoch moved on.
func (l *Ledger) FailChunk(_ context.Context, p store.FailChunkParams) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, owned := l.owned(p.RunLease)
	switch {
	case r == nil:
		return false, nil
	case !owned:
		return false, fmt.Errorf("failing chunk %d of consolidation %d: %w", p.Index, p.RunID, store.ErrLeaseLost)
	}
	c := r.chunk(p.Index)
	if c == nil || c.token != p.Token || c.Status != domain.ChunkRunning {
		return false, nil
	}
	c.Status, c.Error, c.WorkerDied = domain.ChunkFailed, p.Failure.Error, p.Failure.WorkerDied
	return true, nil
}

// SplitChunk replaces a running chunk, while p.Token is its attempt, by two
// pending halves appended at the run's next indexes: the first with the ⌊n/2⌋
// lowest libro ids of its range, the second with the rest. ErrLeaseLost when the
// epoch moved on; ErrNotSplittable for fewer than two employees; ok false when
// the token is not current.
func (l *Ledger) SplitChunk(_ context.Context, p store.SplitChunkParams) ([]store.Chunk, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	wrap := func(err error) error {
		return fmt.Errorf("splitting chunk %d of consolidation %d: %w", p.Index, p.RunID, err)
	}
	r, owned := l.owned(p.RunLease)
	switch {
	case r == nil:
		return nil, false, nil
	case !owned:
		return nil, false, wrap(store.ErrLeaseLost)
	}
	parent := r.chunk(p.Index)
	if parent == nil {
		return nil, false, wrap(store.ErrNotFound)
	}
	if parent.Status != domain.ChunkRunning || parent.token == 0 || parent.token != p.Token {
		return nil, false, nil
	}
	var ids []int64
	for _, id := range l.closings[r.ClosingID].employees {
		if id >= parent.FirstID && id <= parent.LastID {
			ids = append(ids, id)
		}
	}
	if len(ids) < 2 {
		return nil, false, wrap(store.ErrNotSplittable)
	}
	k, next := len(ids)/2, r.TotalChunks
	halves := []store.Chunk{
		{RunID: r.ID, Index: next, FirstID: parent.FirstID, LastID: ids[k-1], Employees: k,
			Status: domain.ChunkPending, Split: true, ParentIndex: p.Index},
		{RunID: r.ID, Index: next + 1, FirstID: ids[k], LastID: parent.LastID, Employees: len(ids) - k,
			Status: domain.ChunkPending, Split: true, ParentIndex: p.Index},
	}
	parent.Status, parent.token, parent.Error, parent.WorkerDied = domain.ChunkSplit, 0, p.Reason, p.WorkerDied
	for _, h := range halves {
		r.chunks = append(r.chunks, &chunk{Chunk: h})
	}
	r.TotalChunks += 2
	return halves, true, nil
}

// FailedEmployees lists the libro employees of the run's failed chunks (only
// those whose workers died, with workerDied), by id, at most limit. RUT is left
// empty: the in-memory closing has none.
func (l *Ledger) FailedEmployees(_ context.Context, runID int64, limit int, workerDied bool) ([]store.FailedEmployee, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	if !ok {
		return nil, nil
	}
	var out []store.FailedEmployee
	for _, id := range l.closings[r.ClosingID].employees {
		for _, c := range r.chunks {
			if c.Status == domain.ChunkFailed && (c.WorkerDied || !workerDied) && id >= c.FirstID && id <= c.LastID &&
				len(out) < limit {
				out = append(out, store.FailedEmployee{EmployeeID: id, ChunkIndex: c.Index, Error: c.Error, WorkerDied: c.WorkerDied})
			}
		}
	}
	return out, nil
}

// CommitChunk is a worker's commit (store.CommitChunk): while token is the
// chunk's attempt and the chunk is running, it writes a row for each libro
// employee of the chunk's range (RowOf), in place of the closing's rows of the
// same employees, and marks the chunk succeeded with their sums and the attempt
// committed. ErrStaleAttempt when token is not current; fromLedger when this same
// attempt committed already (nothing is written again).
func (l *Ledger) CommitChunk(_ context.Context, runID int64, index int, token int64, worker string) (fromLedger bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	var c *chunk
	if ok {
		c = r.chunk(index)
	}
	if c == nil {
		return false, fmt.Errorf("locking chunk %d of consolidation %d: %w", index, runID, store.ErrNotFound)
	}
	if c.token == 0 || c.token != token {
		return false, store.ErrStaleAttempt
	}
	if c.Status == domain.ChunkSucceeded {
		return true, nil
	}
	if c.Status != domain.ChunkRunning {
		return false, store.ErrStaleAttempt
	}
	k := l.closings[r.ClosingID]
	var sum store.WriteSummary
	for _, id := range k.employees {
		if id >= c.FirstID && id <= c.LastID {
			row := RowOf(runID, id)
			k.rows[id] = row
			k.writes[id]++
			add(&sum, row)
		}
	}
	c.Status, c.Error, c.Worker, c.Records = domain.ChunkSucceeded, "", worker, sum.Records
	c.TotalHaberes, c.TotalDescuentos, c.LiquidoPagar = sum.TotalHaberes, sum.TotalDescuentos, sum.LiquidoPagar
	for _, a := range r.attempts {
		if a.index == index && a.token == token {
			a.finished, a.outcome = true, domain.OutcomeCommitted
		}
	}
	return false, nil
}

// FinishRun ends a run (store.FinishRun): see closeRun; with o.RemoveRows the
// run's rows are removed. The closing's previous rows are not kept here: a
// run's rows replace them for good.
func (l *Ledger) FinishRun(_ context.Context, lease store.RunLease, o store.RunEnd) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, err := l.closeRun(lease, o)
	if err != nil || !ok {
		if err != nil {
			err = fmt.Errorf("finishing consolidation %d: %w", lease.RunID, err)
		}
		return false, err
	}
	r := l.runs[lease.RunID]
	if o.RemoveRows {
		rows := l.closings[r.ClosingID].rows
		for id, row := range rows {
			if row.RunID == r.ID {
				delete(rows, id)
			}
		}
	}
	return true, nil
}

// AbortRun ends a run error_consolidacion with errText, always Interrupted.
func (l *Ledger) AbortRun(_ context.Context, lease store.RunLease, errText string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, err := l.closeRun(lease, store.RunEnd{Estado: domain.EstadoError, Error: errText, Interrupted: true})
	if err != nil {
		err = fmt.Errorf("aborting consolidation %d: %w", lease.RunID, err)
	}
	return ok, err
}

// closeRun is store's: an unfinished run (ok false once ended), the caller's
// epoch (ErrLeaseLost), unless Interrupted no cancel stored
// (ErrCancelRequested) and no chunk open (ErrChunksOpen); every token revoked,
// unfinished chunks cancelled, open attempts abandoned, the end recorded on the
// run and on the closing if it is still consolidating (else the estado found is
// recorded on the run).
func (l *Ledger) closeRun(lease store.RunLease, o store.RunEnd) (bool, error) {
	r, owned := l.owned(lease)
	switch {
	case r == nil || r.Finished():
		return false, nil
	case !owned:
		return false, store.ErrLeaseLost
	case r.CancelRequested && !o.Interrupted:
		return false, store.ErrCancelRequested
	}
	if !o.Interrupted && len(r.sortedChunks(1, domain.ChunkPending, domain.ChunkRunning)) > 0 {
		return false, store.ErrChunksOpen
	}
	why := "run ended: " + string(o.Estado)
	for _, c := range r.chunks {
		if c.Status == domain.ChunkSucceeded {
			continue
		}
		c.token = 0
		if c.Status == domain.ChunkPending || c.Status == domain.ChunkRunning {
			c.Status = domain.ChunkCancelled
			c.Error = cmp.Or(c.Error, why)
		}
	}
	for _, a := range r.attempts {
		if !a.finished {
			a.finished, a.outcome, a.err = true, domain.OutcomeAbandoned, why
		}
	}
	r.Estado, r.Error, r.FinishedAt = o.Estado, o.Error, l.clock.Now()
	r.TotalHaberes, r.TotalDescuentos, r.LiquidoPagar = o.Totals.TotalHaberes, o.Totals.TotalDescuentos, o.Totals.LiquidoPagar
	r.TotalsVerified, r.RowsRemoved = o.TotalsVerified, o.RemoveRows
	if k, ok := l.closings[r.ClosingID]; ok {
		if k.estado == domain.EstadoConsolidando {
			k.estado = o.Estado
		} else {
			r.ClosingEstadoFound = k.estado
		}
	}
	return true, nil
}

// ClaimAfterEnd gives owner the steps after an ended run's end for ttl, unless
// they are done or another owner's claim is live.
func (l *Ledger) ClaimAfterEnd(_ context.Context, runID int64, owner string, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	now := l.clock.Now()
	if !ok || !r.Finished() || r.afterEndDone ||
		!r.claimedUntil.IsZero() && r.claimedUntil.After(now) && r.claimedBy != owner {
		return false, nil
	}
	r.claimedBy, r.claimedUntil = owner, now.Add(ttl)
	return true, nil
}

// EndAfterEnd ends owner's claim: done marks the steps done (marked: by this
// call), else the claim is given up.
func (l *Ledger) EndAfterEnd(_ context.Context, runID int64, owner string, done bool) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	if !ok || r.afterEndDone {
		return false, nil
	}
	if done {
		r.afterEndDone, r.claimedUntil = true, time.Time{}
		return true, nil
	}
	if r.claimedBy == owner {
		r.claimedUntil = time.Time{}
	}
	return false, nil
}

// RunsAwaitingAfterEnd lists (by id, at most limit) the ended runs whose steps
// after the end are neither done nor claimed by a live claim.
func (l *Ledger) RunsAwaitingAfterEnd(_ context.Context, limit int) ([]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	ids := l.sortedRuns(func(r *run) bool {
		return r.Finished() && !r.afterEndDone && (r.claimedUntil.IsZero() || !r.claimedUntil.After(now))
	})
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}
