package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/nominacl/consolidation/coordinator/internal/readload"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestReadsAndJunkCannotStarveARun drives a 20,000-employee run while 100
// callers keep exporting another closing, 100 keep dry-running it
// (validate_only) and 400 junk ProcessChunk calls with forged attempt tokens hit
// the workers: the run ends datos_consolidados on the lease it started with, no
// chunk attempt was turned away busy, reads beyond their limit are shed
// RESOURCE_EXHAUSTED with a RetryInfo, and no junk call is answered or turned
// away busy (its token is checked before it could take a worker's slot).
func TestReadsAndJunkCannotStarveARun(t *testing.T) {
	t.Parallel()
	const readers, dryRunners, junk = 100, 100, 400
	c := newCluster(t, clusterOptions{workers: 2})
	ctx := context.Background()

	// The closing read while the other runs: consolidated first (an export is
	// refused while its closing runs).
	read := c.generate(1000, 61)
	first := c.waitEnd(c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: read}).GetConsolidationId(), 2*time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(first.GetEstado()), first.GetError())

	closing := c.generate(20000, 62)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
	runID := resp.GetConsolidationId()

	var addrs []string
	for _, w := range c.workers {
		addrs = append(addrs, w.Addr)
	}
	workers, closeWorkers, err := readload.DialWorkers(addrs)
	require.NoError(t, err)
	t.Cleanup(closeWorkers)
	load := readload.Start(ctx, readload.Config{Client: c.client, Workers: workers, ReadClosing: read,
		Exports: readers, DryRuns: dryRunners, Junk: junk}, readload.Run{ID: runID, Closing: closing, Chunks: resp.GetTotalChunks()})

	final := c.waitEnd(runID, 10*time.Minute)
	got := load.Stop(10 * time.Minute)
	readCodes, unavailable, junkCodes := got.Reads, got.Unavailable, got.Junk
	t.Logf("reads: %v (unavailable: %v); junk ProcessChunk: %v", readCodes, unavailable, junkCodes)

	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, int32(20000), final.GetEmployeesConsolidated())
	for _, a := range c.attempts(runID) {
		require.NotEqual(t, domain.OutcomeBusy, a.Outcome, "chunk %d attempt %d turned away busy", a.Chunk, a.Attempt)
	}
	b, err := os.ReadFile(filepath.Join(c.logDir, "coordinator.log"))
	require.NoError(t, err)
	acquired := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"msg":"run lease acquired"`) && strings.Contains(line, `"consolidation_id":`+itoa(runID)+`,`) {
			acquired++
		}
		require.NotContains(t, line, `"msg":"renewing run lease"`)
		require.NotContains(t, line, "run lease lost before the end")
	}
	require.Equal(t, 1, acquired, "the run's lease was taken once and never lost")

	require.Positive(t, readCodes[codes.ResourceExhausted], "no read was shed")
	require.Zero(t, got.ShedBare, "a shed read without a RetryInfo")
	for code := range readCodes {
		require.Contains(t, []codes.Code{codes.OK, codes.ResourceExhausted, codes.Unavailable}, code, "reads: %v", readCodes)
	}
	// A dry run checks its dependencies within 3 s (engine.checkDependencies); on
	// a machine this loaded a check may not answer in time, and says which.
	// Nothing else may be unavailable.
	for msg := range unavailable {
		require.Contains(t, []string{"postgresql is unreachable", "redis is unreachable", "no worker is reachable"}, msg,
			"reads unavailable: %v", unavailable)
	}
	// A forged token is refused before the call could take a slot: no junk call
	// was answered, or turned away busy (which only a slot taken could cause).
	require.Positive(t, junkCodes[codes.Aborted], "junk ProcessChunk: %v", junkCodes)
	require.Zero(t, junkCodes[codes.OK], "junk ProcessChunk: %v", junkCodes)
	require.Zero(t, junkCodes[codes.ResourceExhausted], "junk ProcessChunk: %v", junkCodes)
}
