// Package slots bounds how many of something run at once and hands a freed slot
// to the smallest waiter first. The coordinator drives its runs in these slots,
// and a worker processes its chunks in them (docs/architecture.md, "Many runs at
// once").
package slots

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// BySize is a bounded number of slots. A freed slot goes to the smallest waiter
// (the size it asked with: a run's employees), of those the one with the lowest
// key (a run id: ids are given out as runs start, so the earliest started), of
// those the one that asked first.
type BySize struct {
	mu      sync.Mutex
	free    int
	seq     uint64
	waiting []*waiter // by size, then key, then seq
}

// New returns n slots.
func New(n int) *BySize { return &BySize{free: n} }

type waiter struct {
	size  int
	key   int64
	seq   uint64
	given bool          // set under BySize.mu when the slot is given
	ready chan struct{} // closed when given
}

func (w *waiter) compare(o *waiter) int {
	return cmp.Or(cmp.Compare(w.size, o.size), cmp.Compare(w.key, o.key), cmp.Compare(w.seq, o.seq))
}

// TryAcquire takes a slot if one is free (nobody waits while one is).
func (s *BySize) TryAcquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 {
		return false
	}
	s.free--
	return true
}

// Acquire takes a slot, waiting for one if none is free. It returns
// context.Cause(ctx) if ctx ends first, and then holds no slot.
func (s *BySize) Acquire(ctx context.Context, key int64, size int) error {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	s.seq++
	w := &waiter{size: size, key: key, seq: s.seq, ready: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(s.waiting, w, (*waiter).compare)
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
		s.waiting = slices.DeleteFunc(s.waiting, func(o *waiter) bool { return o == w })
	}
	s.mu.Unlock()
	return context.Cause(ctx)
}

// Release gives a slot back.
func (s *BySize) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *BySize) releaseLocked() {
	if len(s.waiting) == 0 {
		s.free++
		return
	}
	w := s.waiting[0]
	s.waiting = slices.Delete(s.waiting, 0, 1)
	w.given = true
	close(w.ready)
}

// Queued is the number of waiters.
func (s *BySize) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}
