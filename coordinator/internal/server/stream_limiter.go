package server

import "sync"

// streamLimiter bounds the streams each caller holds open at once. A caller is
// counted only while it holds a stream, so the map holds only current callers.
type streamLimiter struct {
	max int

	mu   sync.Mutex
	open map[string]int
}

func newStreamLimiter(max int) *streamLimiter {
	return &streamLimiter{max: max, open: map[string]int{}}
}

// acquire takes a stream for caller, or reports false when caller holds max
// already. Every true must be followed by one release.
func (l *streamLimiter) acquire(caller string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[caller] >= l.max {
		return false
	}
	l.open[caller]++
	return true
}

// release gives back a stream acquire took.
func (l *streamLimiter) release(caller string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[caller]--; l.open[caller] <= 0 {
		delete(l.open, caller)
	}
}

// callers is the number of callers holding a stream.
func (l *streamLimiter) callers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}
