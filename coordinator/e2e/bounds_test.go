package e2e_test

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/plan"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestChunkSizeBounds runs chunk_size 0, 1 and the values outside its range
// through the real services (docs/rules.md, "Chunk size").
func TestChunkSizeBounds(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1})

	t.Run("ZeroIsThePolicySize", func(t *testing.T) {
		closing := c.generate(133, 1)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		require.EqualValues(t, len(plan.BalancedSizes(133, plan.PolicySize(133))), resp.GetTotalChunks())
		final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.EqualValues(t, plan.SeedSize(133), final.GetChunkSize())
		require.Equal(t, string(domain.EstadoConsolidados), final.GetEstado())
	})
	t.Run("OneOnASmallClosing", func(t *testing.T) {
		closing := c.generate(40, 2)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 1})
		require.EqualValues(t, 40, resp.GetTotalChunks())
		final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, string(domain.EstadoConsolidados), final.GetEstado())
		requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))
	})
	t.Run("OneBeyondThePlanBound", func(t *testing.T) {
		// One employee more than MaxChunksPerRun: chunk_size 1 would plan 10,001
		// chunks. The refusal names the smallest size that fits, and that size is
		// accepted.
		closing := c.generate(plan.MaxChunksPerRun+1, 3)
		c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 1}, codes.InvalidArgument,
			"chunk_size 1", "more than 10000 chunks", "the smallest chunk_size for this closing is 2")
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 2})
		require.EqualValues(t, 5001, resp.GetTotalChunks())
		_, err := c.client.CancelConsolidation(context.Background(), &consolidationv1.CancelConsolidationRequest{
			Ref: &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: resp.GetConsolidationId()}})
		require.NoError(t, err)
	})
	t.Run("OutOfRange", func(t *testing.T) {
		closing := c.generate(10, 4)
		for _, size := range []int32{math.MaxInt32, plan.MaxChunkSize + 1, -1, math.MinInt32} {
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: size}, codes.InvalidArgument,
				"chunk_size "+itoa(int64(size)), "1..5000")
		}
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: plan.MaxChunkSize})
		require.EqualValues(t, 1, resp.GetTotalChunks(), "the largest chunk_size is accepted")
		c.waitEnd(resp.GetConsolidationId(), time.Minute)
	})
}

// TestWatchStreamLimitPerCaller opens more WatchConsolidation streams than one
// caller may hold, on a run kept running by a worker that holds its only chunk;
// a second caller (another loopback address) is unaffected.
func TestWatchStreamLimitPerCaller(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 1, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=0=60s"},
		coordEnv: []string{"MAX_WATCH_STREAMS_PER_CALLER=2"}})
	closing := c.generate(10, 1)
	run := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing}).GetConsolidationId()
	req := &consolidationv1.WatchConsolidationRequest{Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: run}}

	// watch opens a stream and reads its first message (or its refusal).
	watch := func(client consolidationv1.ConsolidationServiceClient) (context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		s, err := client.WatchConsolidation(ctx, req)
		require.NoError(t, err)
		_, err = s.Recv()
		return cancel, err
	}
	first, err := watch(c.client)
	require.NoError(t, err)
	_, err = watch(c.client)
	require.NoError(t, err)
	_, err = watch(c.client)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "2 WatchConsolidation streams open")
	require.Contains(t, status.Convert(err).Message(), "MAX_WATCH_STREAMS_PER_CALLER")

	other := clientFrom(t, "127.0.0.2", c.coord.Addr)
	_, err = watch(other)
	require.NoError(t, err, "another caller is not limited by the first one's streams")

	first()
	require.Eventually(t, func() bool {
		cancel, err := watch(c.client)
		cancel()
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "a closed stream frees a place for its caller")
}

// clientFrom dials the coordinator from a given local address, a caller of its
// own for the coordinator.
func clientFrom(t *testing.T, localIP, target string) consolidationv1.ConsolidationServiceClient {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	conn, err := grpcx.Dial(target, grpcx.WithGRPCDialOptions(grpc.WithContextDialer(
		func(ctx context.Context, addr string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) })))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return consolidationv1.NewConsolidationServiceClient(conn)
}
