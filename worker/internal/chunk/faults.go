package chunk

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Faults injects delays into chunk processing, for the fault tests only: it is
// configured from FAULT_HOLD_BEFORE_COMMIT (after reading, before the commit's
// transaction), FAULT_HOLD_IN_COMMIT (inside it, before writing) and
// FAULT_HOLD_AFTER_COMMIT, and is nil in normal operation. A spec is a comma list of CHUNK=DURATION: a chunk index holds
// the first attempt of that chunk this process sees; "*" holds every attempt of
// every chunk.
type Faults struct {
	before, inTx, after map[string]time.Duration
	mu                  sync.Mutex
	seen                map[string]bool
}

// ParseFaults reads the three specs; all empty gives nil.
func ParseFaults(before, inTx, after string) (*Faults, error) {
	if before == "" && inTx == "" && after == "" {
		return nil, nil
	}
	f := &Faults{seen: map[string]bool{}}
	var err error
	if f.before, err = parseHolds(before); err != nil {
		return nil, fmt.Errorf("FAULT_HOLD_BEFORE_COMMIT: %w", err)
	}
	if f.inTx, err = parseHolds(inTx); err != nil {
		return nil, fmt.Errorf("FAULT_HOLD_IN_COMMIT: %w", err)
	}
	if f.after, err = parseHolds(after); err != nil {
		return nil, fmt.Errorf("FAULT_HOLD_AFTER_COMMIT: %w", err)
	}
	return f, nil
}

func parseHolds(spec string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, part := range strings.Split(spec, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		d, err := time.ParseDuration(v)
		if !ok || err != nil {
			return nil, fmt.Errorf("%q: want CHUNK=DURATION", part)
		}
		if k != "*" {
			if _, err := strconv.Atoi(k); err != nil {
				return nil, fmt.Errorf("%q: chunk must be an index or *", part)
			}
		}
		out[k] = d
	}
	return out, nil
}

func (f *Faults) holdBeforeCommit(chunk int) time.Duration {
	if f == nil {
		return 0
	}
	return f.hold(f.before, "before", chunk)
}

func (f *Faults) holdInCommit(chunk int) time.Duration {
	if f == nil {
		return 0
	}
	return f.hold(f.inTx, "in", chunk)
}

func (f *Faults) holdAfterCommit(chunk int) time.Duration {
	if f == nil {
		return 0
	}
	return f.hold(f.after, "after", chunk)
}

func (f *Faults) hold(holds map[string]time.Duration, phase string, chunk int) time.Duration {
	if d, ok := holds["*"]; ok {
		return d
	}
	key := strconv.Itoa(chunk)
	d, ok := holds[key]
	if !ok {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[phase+key] {
		return 0
	}
	f.seen[phase+key] = true
	return d
}
