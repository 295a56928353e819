//go:build faultinject

package chunk

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/rules"
)

func TestParseFaults(t *testing.T) {
	t.Parallel()

	f, err := ParseFaults("", "", "", "")
	require.NoError(t, err)
	require.Nil(t, f, "no spec, no fault injection")
	require.Zero(t, f.holdBeforeCommit(0), "a nil Faults holds nothing")
	require.False(t, f.killsOn([]rules.Sources{{Libro: rules.Libro{ID: 7}}}), "a nil Faults kills nothing")

	f, err = ParseFaults("0=2s, 3=150ms", "5=1s", "*=1s", "")
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, f.holdBeforeCommit(0))
	require.Zero(t, f.holdBeforeCommit(0), "a chunk index holds the first attempt only")
	require.Equal(t, 150*time.Millisecond, f.holdBeforeCommit(3))
	require.Zero(t, f.holdBeforeCommit(1))
	require.Equal(t, time.Second, f.holdInCommit(5))
	require.Zero(t, f.holdInCommit(0))
	require.Equal(t, time.Second, f.holdAfterCommit(7))
	require.Equal(t, time.Second, f.holdAfterCommit(7), "* holds every attempt")

	for _, bad := range []string{"0", "x=1s", "0=soon", "=1s"} {
		_, err := ParseFaults(bad, "", "", "")
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "FAULT_HOLD_BEFORE_COMMIT")
	}
}

func TestKillOnEmployee(t *testing.T) {
	t.Parallel()
	f, err := ParseFaults("", "", "", "7, 12")
	require.NoError(t, err)
	require.NotNil(t, f)
	chunk := func(ids ...int64) []rules.Sources {
		var out []rules.Sources
		for _, id := range ids {
			out = append(out, rules.Sources{Libro: rules.Libro{ID: id}})
		}
		return out
	}
	require.True(t, f.killsOn(chunk(5, 6, 7, 8)))
	require.True(t, f.killsOn(chunk(12)), "every time, not only the first")
	require.True(t, f.killsOn(chunk(12)))
	require.False(t, f.killsOn(chunk(5, 6, 8)))
	require.Zero(t, f.holdBeforeCommit(0), "no hold asked")

	for _, bad := range []string{"x", "0", "-3", "7;8"} {
		_, err := ParseFaults("", "", "", bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "FAULT_KILL_ON_EMPLOYEE")
	}
}
