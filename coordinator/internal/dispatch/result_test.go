package dispatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

func TestCallErrorKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		reached  bool // the call had a connection to the worker
		answered bool // the worker's handler answered (its trailer)
		want     ErrorKind
		msg      string
	}{
		{"FailedPreconditionIsDataError", status.Error(codes.FailedPrecondition, "employee row 7: total_haberes does not fit numeric(12,2)"), true, true, KindDataError, "employee row 7: total_haberes does not fit numeric(12,2)"},
		{"InvalidArgumentIsDataError", status.Error(codes.InvalidArgument, "closing_id must be > 0"), true, true, KindDataError, "closing_id must be > 0"},
		{"NotFoundIsDataError", status.Error(codes.NotFound, "chunk 3 of consolidation 9: not found"), true, true, KindDataError, "chunk 3 of consolidation 9: not found"},
		{"DatabaseRefusalIsItsOwnKind", grpcx.DatabaseRefused("database error 42501 insufficient_privilege", "42501"), true, true, KindDatabaseRefused, "database error 42501 insufficient_privilege"},
		{"AbortedIsStale", status.Error(codes.Aborted, "stale attempt"), true, true, KindStale, "stale attempt"},
		{"DeadlineExceededIsTimeout", status.Error(codes.DeadlineExceeded, "chunk exceeded its time limit"), true, true, KindTimeout, "chunk exceeded its time limit"},
		{"ResourceExhaustedIsBusy", status.Error(codes.ResourceExhausted, "worker is at its in-flight limit"), true, true, KindBusy, "worker is at its in-flight limit"},
		{"UnavailableIsOther", status.Error(codes.Unavailable, "database error 57P01"), true, true, KindOther, "database error 57P01"},
		{"WorkerAnsweredUnavailableIsOther", status.Error(codes.Unavailable, "chunk failed: boom"), true, true, KindOther, "chunk failed: boom"},
		{"ConnectionLostMidCallIsWorkerDied", status.Error(codes.Unavailable, "error reading from server: EOF"), true, false, KindWorkerDied, "error reading from server: EOF"},
		{"InternalWithoutAnswerIsOther", status.Error(codes.Internal, "stream terminated"), true, false, KindOther, "stream terminated"},
		{"InternalIsOther", status.Error(codes.Internal, "boom"), true, true, KindOther, "boom"},
		{"CanceledIsOther", status.Error(codes.Canceled, "chunk cancelled"), true, true, KindOther, "chunk cancelled"},
		{"UnknownIsOther", status.Error(codes.Unknown, "?"), true, true, KindOther, "?"},
		{"ClientDeadlineIsTimeout", status.FromContextError(context.DeadlineExceeded).Err(), true, true, KindTimeout, context.DeadlineExceeded.Error()},
		{"PlainErrorIsOther", errors.New("connection reset"), true, true, KindOther, "connection reset"},
		{"ConnectionRefusedIsNotStarted", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), false, false, KindNotStarted,
			`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`},
		{"DeadlineWhileConnectingIsNotStarted", status.Error(codes.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready"), false, false, KindNotStarted,
			"context deadline exceeded while waiting for connections to become ready"},
		{"CanceledBeforeConnectingIsOther", status.Error(codes.Canceled, "grpc: the client connection is closing"), false, false, KindOther, "grpc: the client connection is closing"},
		{"InternalBeforeConnectingIsOther", status.Error(codes.Internal, "received picker error with illegal status"), false, false, KindOther, "received picker error with illegal status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ce := callError(tc.err, tc.reached, tc.answered)
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

// callOnce slots a slot on the dispatcher's only worker and processes a chunk there.
func callOnce(t *testing.T, target string) error {
	t.Helper()
	d, err := NewDispatcher(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Target: target})
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
// call with no connection to the worker is not started; one whose connection
// breaks while the worker has it is not: the worker died under it, unless the
// worker answered.
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
	t.Run("BusyWorkerIsBusy", func(t *testing.T) {
		t.Parallel()
		addr, _ := serveStub(t, func(context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			return nil, status.Error(codes.ResourceExhausted, "worker is at its in-flight limit")
		})
		var ce *CallError
		require.ErrorAs(t, callOnce(t, addr), &ce)
		require.Equal(t, KindBusy, ce.Kind, "%s: %s", ce.Code, ce.Msg)
	})
	t.Run("WorkerAnsweringUnavailableIsOther", func(t *testing.T) {
		t.Parallel()
		addr, _ := serveStub(t, func(ctx context.Context) (*consolidationv1.ProcessChunkResponse, error) {
			require.NoError(t, grpcx.MarkAnswered(ctx))
			return nil, status.Error(codes.Unavailable, "database error 57P01")
		})
		var ce *CallError
		require.ErrorAs(t, callOnce(t, addr), &ce)
		require.Equal(t, KindOther, ce.Kind, "%s: %s", ce.Code, ce.Msg)
	})
	t.Run("WorkerGoneMidCallIsWorkerDied", func(t *testing.T) {
		t.Parallel()
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
		require.Equal(t, KindWorkerDied, ce.Kind, "%s: %s", ce.Code, ce.Msg)
		require.Equal(t, codes.Unavailable.String(), ce.Code)
	})
}
