package engine

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// runSlots bounds how many runs are driven at once. A run takes a slot before its
// driver starts and gives it back when the driver returns; runs beyond the bound
// wait, and a freed slot goes to the smallest waiting run (fewest employees), of
// those the one that started first (the lowest run id: ids are given out as runs
// start), so a small closing sent at month end is not queued behind larger ones
// (docs/architecture.md, "Many runs at once"), and a restarted coordinator resumes
// its unfinished runs a few at a time.
type runSlots struct {
	mu      sync.Mutex
	free    int
	waiting []*runWaiter // by size, then run id
}

// newRunSlots returns n slots.
func newRunSlots(n int) *runSlots { return &runSlots{free: n} }

type runWaiter struct {
	runID int64
	size  int           // the run's employees
	given bool          // set under runSlots.mu when the slot is given
	ready chan struct{} // closed when given
}

// tryAcquire takes a slot if one is free (nobody waits while one is).
func (s *runSlots) tryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 {
		return false
	}
	s.free--
	return true
}

// acquire waits for a slot for a run of size employees. It returns
// context.Cause(ctx) if ctx ends first.
func (s *runSlots) acquire(ctx context.Context, runID int64, size int) error {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	w := &runWaiter{runID: runID, size: size, ready: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(s.waiting, w, func(o, w *runWaiter) int {
		return cmp.Or(cmp.Compare(o.size, w.size), cmp.Compare(o.runID, w.runID))
	})
	s.waiting = slices.Insert(s.waiting, i, w)
	s.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if w.given { // given just now: hand it on
		s.releaseLocked()
	} else {
		s.waiting = slices.DeleteFunc(s.waiting, func(o *runWaiter) bool { return o == w })
	}
	s.mu.Unlock()
	return context.Cause(ctx)
}

// release gives a slot back.
func (s *runSlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *runSlots) releaseLocked() {
	if len(s.waiting) == 0 {
		s.free++
		return
	}
	w := s.waiting[0]
	s.waiting = slices.Delete(s.waiting, 0, 1)
	w.given = true
	close(w.ready)
}

// queued is the number of runs waiting for a slot.
func (s *runSlots) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}
