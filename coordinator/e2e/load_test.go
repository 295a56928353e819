package e2e_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/server"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
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

	var (
		running      atomic.Bool
		wg           sync.WaitGroup
		mu           sync.Mutex
		readCodes    = map[codes.Code]int{}
		unavailable  = map[string]int{} // messages of UNAVAILABLE reads
		junkCodes    = map[codes.Code]int{}
		missingRetry atomic.Int64
	)
	running.Store(true)
	note := func(m map[codes.Code]int, err error) {
		mu.Lock()
		m[status.Code(err)]++
		mu.Unlock()
	}
	// A reader repeats its call until the run ends, waiting the RetryInfo's delay
	// when shed, as a well-behaved client does.
	reader := func(call func() error) {
		defer wg.Done()
		for n := 0; n == 0 || running.Load(); n++ {
			err := call()
			note(readCodes, err)
			if status.Code(err) == codes.Unavailable {
				mu.Lock()
				unavailable[status.Convert(err).Message()]++
				mu.Unlock()
			}
			if status.Code(err) != codes.ResourceExhausted {
				continue
			}
			delay := time.Duration(0)
			for _, d := range status.Convert(err).Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					delay = ri.GetRetryDelay().AsDuration()
				}
			}
			if delay <= 0 {
				missingRetry.Add(1)
				delay = server.ReadRetryDelay
			}
			time.Sleep(delay)
		}
	}
	export := func() error {
		stream, err := c.client.ExportConsolidation(ctx, &consolidationv1.ExportConsolidationRequest{ClosingId: read})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	dryRun := func() error {
		_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: read, Force: true, ValidateOnly: true})
		return err
	}
	for range readers {
		wg.Add(1)
		go reader(export)
	}
	for range dryRunners {
		wg.Add(1)
		go reader(dryRun)
	}
	var workers []consolidationv1.WorkerServiceClient
	for _, w := range c.workers {
		conn, err := grpcx.Dial(w.Addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		workers = append(workers, consolidationv1.NewWorkerServiceClient(conn))
	}
	for i := range junk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := workers[i%len(workers)].ProcessChunk(ctx, &consolidationv1.ProcessChunkRequest{ConsolidationId: runID,
				ClosingId: closing, ChunkIndex: int32(rand.IntN(int(resp.GetTotalChunks()))), AttemptToken: rand.Int64N(1<<62) + 1})
			note(junkCodes, err)
		}()
	}

	final := c.waitEnd(runID, 10*time.Minute)
	running.Store(false)
	wg.Wait()
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
	require.Zero(t, missingRetry.Load(), "a shed read without a RetryInfo")
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
