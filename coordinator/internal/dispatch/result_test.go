package dispatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

func TestCallErrorKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   error
		reach callReach
		want  ErrorKind
		msg   string
	}{
		{"FailedPreconditionIsDataError", status.Error(codes.FailedPrecondition, "employee row 7: total_haberes does not fit numeric(12,2)"), callReach{Reached: true, Answered: true}, KindDataError, "employee row 7: total_haberes does not fit numeric(12,2)"},
		{"InvalidArgumentIsDataError", status.Error(codes.InvalidArgument, "closing_id must be > 0"), callReach{Reached: true, Answered: true}, KindDataError, "closing_id must be > 0"},
		{"NotFoundIsDataError", status.Error(codes.NotFound, "chunk 3 of consolidation 9: not found"), callReach{Reached: true, Answered: true}, KindDataError, "chunk 3 of consolidation 9: not found"},
		{"DatabaseRefusalIsItsOwnKind", grpcx.DatabaseRefused("database error 42501 insufficient_privilege", "42501"), callReach{Reached: true, Answered: true}, KindDatabaseRefused, "database error 42501 insufficient_privilege"},
		{"AbortedIsStale", status.Error(codes.Aborted, "stale attempt"), callReach{Reached: true, Answered: true}, KindStale, "stale attempt"},
		{"DeadlineExceededIsTimeout", status.Error(codes.DeadlineExceeded, "chunk exceeded its time limit"), callReach{Reached: true, Answered: true}, KindTimeout, "chunk exceeded its time limit"},
		{"ResourceExhaustedIsBusy", status.Error(codes.ResourceExhausted, "worker is at its in-flight limit"), callReach{Reached: true, Answered: true}, KindBusy, "worker is at its in-flight limit"},
		{"UnavailableIsOther", status.Error(codes.Unavailable, "database error 57P01"), callReach{Reached: true, Answered: true}, KindOther, "database error 57P01"},
		{"WorkerAnsweredUnavailableIsOther", status.Error(codes.Unavailable, "chunk failed: boom"), callReach{Reached: true, Answered: true}, KindOther, "chunk failed: boom"},
		{"ConnectionLostWhileHeldIsWorkerDied", status.Error(codes.Unavailable, "error reading from server: EOF"), callReach{Reached: true, Held: true}, KindWorkerDied, "error reading from server: EOF"},
		{"ConnectionLostBeforeTheWorkerHeldItIsNotStarted", status.Error(codes.Unavailable, "error reading from server: EOF"), callReach{Reached: true}, KindNotStarted, "error reading from server: EOF"},
		{"InternalWithoutAnswerIsOther", status.Error(codes.Internal, "stream terminated"), callReach{Reached: true}, KindOther, "stream terminated"},
		{"InternalIsOther", status.Error(codes.Internal, "boom"), callReach{Reached: true, Answered: true}, KindOther, "boom"},
		{"CanceledIsOther", status.Error(codes.Canceled, "chunk cancelled"), callReach{Reached: true, Answered: true}, KindOther, "chunk cancelled"},
		{"UnknownIsOther", status.Error(codes.Unknown, "?"), callReach{Reached: true, Answered: true}, KindOther, "?"},
		{"ClientDeadlineIsTimeout", status.FromContextError(context.DeadlineExceeded).Err(), callReach{Reached: true, Answered: true}, KindTimeout, context.DeadlineExceeded.Error()},
		{"PlainErrorIsOther", errors.New("connection reset"), callReach{Reached: true, Answered: true}, KindOther, "connection reset"},
		{"ConnectionRefusedIsNotStarted", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), callReach{}, KindNotStarted,
			`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`},
		{"DeadlineWhileConnectingIsNotStarted", status.Error(codes.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready"), callReach{}, KindNotStarted,
			"context deadline exceeded while waiting for connections to become ready"},
		{"CanceledBeforeConnectingIsOther", status.Error(codes.Canceled, "grpc: the client connection is closing"), callReach{}, KindOther, "grpc: the client connection is closing"},
		{"InternalBeforeConnectingIsOther", status.Error(codes.Internal, "received picker error with illegal status"), callReach{}, KindOther, "received picker error with illegal status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ce := callError(tc.err, tc.reach)
			require.Equal(t, tc.want, ce.Kind)
			require.Equal(t, tc.msg, ce.Error())
			require.Equal(t, status.Code(tc.err).String(), ce.Code)
		})
	}
}

func TestEveryCodeHasAKind(t *testing.T) {
	t.Parallel()
	data, stale, timeout, busy := 0, 0, 0, 0
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		switch kindOf(c) {
		case KindDataError:
			data++
		case KindStale:
			stale++
		case KindTimeout:
			timeout++
		case KindBusy:
			busy++
		}
	}
	require.Equal(t, 3, data, "FailedPrecondition, InvalidArgument and NotFound are data errors")
	require.Equal(t, 1, stale, "only Aborted is stale")
	require.Equal(t, 1, timeout, "only DeadlineExceeded is a timeout")
	require.Equal(t, 1, busy, "only ResourceExhausted is busy")
}

// stubWorker answers ProcessChunk with answer, which sees the call's context.
type stubWorker struct {
	consolidationv1.UnimplementedWorkerServiceServer
	answer func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error)
}

func (w stubWorker) ProcessChunk(ctx context.Context, _ *consolidationv1.ProcessChunkRequest) (*consolidationv1.ProcessChunkResponse, error) {
	return w.answer(ctx)
}

// serveStub serves a stub worker on a loopback port; stop stops it at once, as a
// worker that dies does.
func serveStub(t *testing.T, answer func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error)) (addr string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	consolidationv1.RegisterWorkerServiceServer(srv, stubWorker{answer: answer})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String(), srv.Stop
}

// callOnce slots a slot on the dispatcher's only worker and processes a chunk
// there, with opts on the connection to it.
func callOnce(t *testing.T, target string, opts ...grpcx.DialOption) error {
	t.Helper()
	d, err := NewDispatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Target: target, DialOptions: opts})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := d.Acquire(ctx, 1, 0)
	require.NoError(t, err)
	defer l.Release(false)
	_, err = l.ProcessChunk(ctx, ChunkRequest{RunID: 1, ClosingID: 1, Index: 0, Token: 1})
	return err
}

// TestProcessChunkTellsCallsThatNeverReachedAWorker calls real gRPC servers: a
// call with no connection to the worker is not started, nor is one whose
// connection breaks before the worker took the chunk on; one that breaks while
// the worker held it (its header said so) is a worker that died under it, unless
// the worker answered.
func TestProcessChunkTellsCallsThatNeverReachedAWorker(t *testing.T) {
	t.Parallel()
	t.Run("NobodyListensIsNotStarted", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close()) // the port refuses connections from now on

		var ce *CallError
		require.ErrorAs(t, callOnce(t, addr), &ce)
		require.Equal(t, KindNotStarted, ce.Kind, "%s: %s", ce.Code, ce.Msg)
		require.Equal(t, codes.Unavailable.String(), ce.Code)
	})
	// Workers that answer, or fail without answering: the header sent when a
	// worker took the chunk reaches the caller with a failed call, so a connection
	// broken under a held chunk is a death.
	for _, tc := range []struct {
		name   string
		answer func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error)
		want   ErrorKind
	}{
		{"BusyWorkerIsBusy", func(context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			return nil, status.Error(codes.ResourceExhausted, "worker is at its in-flight limit")
		}, KindBusy},
		{"WorkerAnsweringUnavailableIsOther", func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			if err := grpcx.MarkAnswered(ctx); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.Unavailable, "database error 57P01")
		}, KindOther},
		{"HeldWithoutAnswerIsWorkerDied", func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			if err := grpcx.MarkHeld(ctx); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.Unavailable, "error reading from server: EOF")
		}, KindWorkerDied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := serveStub(t, tc.answer)
			var ce *CallError
			require.ErrorAs(t, callOnce(t, addr), &ce)
			require.Equal(t, tc.want, ce.Kind, "%s: %s", ce.Code, ce.Msg)
		})
	}
	t.Run("WorkerGoneBeforeHoldingTheChunkIsNotStarted", func(t *testing.T) {
		t.Parallel()
		// The worker has the call (waiting for a slot another chunk holds, say)
		// and dies: the connection breaks under a call it never took on.
		started := make(chan struct{})
		addr, stop := serveStub(t, func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		go func() {
			<-started
			stop() // closes the connection under the call in flight
		}()
		var ce *CallError
		require.ErrorAs(t, callOnce(t, addr), &ce)
		require.Equal(t, KindNotStarted, ce.Kind, "%s: %s", ce.Code, ce.Msg)
		require.Equal(t, codes.Unavailable.String(), ce.Code)
	})
	t.Run("WorkerGoneHoldingTheChunkIsWorkerDied", func(t *testing.T) {
		t.Parallel()
		// The worker took the chunk on, its header reached the coordinator, and it
		// dies: the connection breaks under a chunk it held.
		addr, stop := serveStub(t, func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			if err := grpcx.MarkHeld(ctx); err != nil {
				return nil, err
			}
			<-ctx.Done()
			return nil, ctx.Err()
		})
		header := headerSeen{seen: make(chan struct{})}
		go func() {
			<-header.seen
			stop() // closes the connection under the call in flight
		}()
		var ce *CallError
		require.ErrorAs(t, callOnce(t, addr, grpcx.WithGRPCDialOptions(grpc.WithStatsHandler(&header))), &ce)
		require.Equal(t, KindWorkerDied, ce.Kind, "%s: %s", ce.Code, ce.Msg)
		require.Equal(t, codes.Unavailable.String(), ce.Code)
	})
}

// headerSeen is a client stats handler that closes seen when a call's header
// has arrived.
type headerSeen struct {
	seen chan struct{}
	once sync.Once
}

func (h *headerSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (h *headerSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (h *headerSeen) HandleConn(context.Context, stats.ConnStats)                       {}

func (h *headerSeen) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InHeader); ok {
		h.once.Do(func() { close(h.seen) })
	}
}
