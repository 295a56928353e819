//go:build !faultinject

package chunk

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoFaultInjectionInProduction: a worker built without the faultinject tag
// has no fault injection and refuses to start with a fault variable set.
func TestNoFaultInjectionInProduction(t *testing.T) {
	t.Parallel()
	f, err := FaultsFromEnv(func(string) string { return "" })
	require.NoError(t, err)
	require.Nil(t, f)
	_, err = FaultsFromEnv(func(name string) string {
		if name == "FAULT_KILL_ON_EMPLOYEE" {
			return "7"
		}
		return ""
	})
	require.ErrorContains(t, err, "FAULT_KILL_ON_EMPLOYEE: this worker is built without fault injection")
}
