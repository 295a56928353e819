package bench

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampleResident's anon peak sees memory the process touched and let go of
// between two of the kernel's readings at the run's end: the peak a reading at
// the end would miss.
func TestSampleResident(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc: not Linux")
	}
	pid := os.Getpid()
	runtime.GC()
	before, _ := residentSplit(pid)
	stop := sampleResident(pid, time.Millisecond)
	const size = 64 << 20
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touched: resident
	}
	time.Sleep(50 * time.Millisecond) // read many times while it is held
	runtime.KeepAlive(b)
	debug.FreeOSMemory() // b is garbage now: given back to the kernel
	after, _ := residentSplit(pid)
	time.Sleep(20 * time.Millisecond) // read again since
	anon, file := stop()
	require.GreaterOrEqual(t, anon, before+size*9/10, "the 64 MiB held during the sampling")
	// Under the race detector, the memory's shadow stays resident: given back
	// only without it.
	if after < before+size/2 {
		require.Greater(t, anon, after+size/2, "the peak, not the last reading")
	}
	require.Positive(t, file, "the binary's pages")
}
