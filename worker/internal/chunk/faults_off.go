//go:build !faultinject

package chunk

import (
	"fmt"
	"time"

	"github.com/nominacl/consolidation/pkg/rules"
)

// Faults is empty in a production build: the fault injection of the fault tests
// (faults.go) is compiled only with the faultinject build tag, so no
// environment variable can make a shipped worker kill itself or stall a commit.
type Faults struct{}

// FaultsFromEnv refuses the fault tests' FAULT_* variables: this build has no fault injection,
// and a test that sets one must not pass for a worker that ignores it.
func FaultsFromEnv(getenv func(string) string) (*Faults, error) {
	for _, name := range []string{"FAULT_HOLD_BEFORE_COMMIT", "FAULT_HOLD_IN_COMMIT", "FAULT_HOLD_AFTER_COMMIT", "FAULT_KILL_ON_EMPLOYEE"} {
		if getenv(name) != "" {
			return nil, fmt.Errorf("%s: this worker is built without fault injection (build tag faultinject)", name)
		}
	}
	return nil, nil
}

func (*Faults) killsOn([]rules.Sources) bool       { return false }
func (*Faults) holdBeforeCommit(int) time.Duration { return 0 }
func (*Faults) holdInCommit(int) time.Duration     { return 0 }
func (*Faults) holdAfterCommit(int) time.Duration  { return 0 }

// die is never called: killsOn is always false.
func die() {}
