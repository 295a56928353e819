//go:build faultinject

package chunk

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nominacl/consolidation/pkg/rules"
)

// Faults injects faults into chunk processing, for the fault tests only: it is
// compiled only with the faultinject build tag, which the end-to-end harness
// sets when it builds the worker (a production build has faults_off.go's empty
// Faults instead). It is configured from FAULT_HOLD_BEFORE_COMMIT (after reading, before the commit's
// transaction), FAULT_HOLD_IN_COMMIT (inside it, before writing),
// FAULT_HOLD_AFTER_COMMIT and FAULT_KILL_ON_EMPLOYEE, and is nil in normal
// operation. A hold spec is a comma list of CHUNK=DURATION: a chunk index holds
// the first attempt of that chunk this process sees; "*" holds every attempt of
// every chunk. FAULT_KILL_ON_EMPLOYEE is a comma list of libro row ids: the
// worker SIGKILLs itself on reading a chunk that holds one of them, every time,
// as a worker killed by the kernel for memory would die (docs/lifecycle.md#how-a-run-ends).
type Faults struct {
	before, inTx, after map[string]time.Duration
	killOn              map[int64]bool
	mu                  sync.Mutex
	seen                map[string]bool
}

// FaultsFromEnv reads FAULT_HOLD_BEFORE_COMMIT, FAULT_HOLD_IN_COMMIT,
// FAULT_HOLD_AFTER_COMMIT and FAULT_KILL_ON_EMPLOYEE; none set gives nil.
func FaultsFromEnv(getenv func(string) string) (*Faults, error) {
	return ParseFaults(getenv("FAULT_HOLD_BEFORE_COMMIT"), getenv("FAULT_HOLD_IN_COMMIT"),
		getenv("FAULT_HOLD_AFTER_COMMIT"), getenv("FAULT_KILL_ON_EMPLOYEE"))
}

// ParseFaults reads the four specs; all empty gives nil.
func ParseFaults(before, inTx, after, killOn string) (*Faults, error) {
	if before == "" && inTx == "" && after == "" && killOn == "" {
		return nil, nil
	}
	f := &Faults{seen: map[string]bool{}, killOn: map[int64]bool{}}
	for _, part := range strings.Split(killOn, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("FAULT_KILL_ON_EMPLOYEE: %q: want libro row ids", part)
		}
		f.killOn[id] = true
	}
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

// killsOn reports whether the chunk of these libro employees kills the worker: it
// holds one of FAULT_KILL_ON_EMPLOYEE's ids.
func (f *Faults) killsOn(employees []rules.Sources) bool {
	if f == nil || len(f.killOn) == 0 {
		return false
	}
	for _, e := range employees {
		if f.killOn[e.Libro.ID] {
			return true
		}
	}
	return false
}

// die kills this process at once (SIGKILL, no cleanup, no answer to the call), as
// the kernel's OOM killer would.
func die() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is delivered before this returns to anything
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
