package grpcx_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// TestCallsBeyondMaxConcurrentStreamsWait holds MaxConcurrentStreams health
// Watch calls open on one connection to a server of NewServer: the next call on
// that connection does not start (its deadline passes), and starts once one of
// the open calls ends. One client cannot hold more of a server than that.
func TestCallsBeyondMaxConcurrentStreamsWait(t *testing.T) {
	t.Parallel()
	addr := serve(t)
	conn := dialVia(t, addr, nil)
	client := healthpb.NewHealthClient(conn)
	cancels := make([]context.CancelFunc, grpcx.MaxConcurrentStreams)
	for i := range cancels {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cancels[i] = cancel
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		_, err = stream.Recv() // the call is in the server's handler, and stays there
		require.NoError(t, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	cancel()
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "a call beyond the bound started: %v", err)

	cancels[0]()
	_, err = check(t, conn)
	require.NoError(t, err, "a call did not start once one of the open ones ended")
}
