package ledgertest

import (
	"sync"
	"time"
)

// Clock is the ledger's time: leases and claims expire by it, and only when a
// test moves it on.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
