package dispatch

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCallErrorKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want ErrorKind
		msg  string
	}{
		{"FailedPreconditionIsDataError", status.Error(codes.FailedPrecondition, "employee row 7: total_haberes does not fit numeric(12,2)"), KindDataError, "employee row 7: total_haberes does not fit numeric(12,2)"},
		{"InvalidArgumentIsDataError", status.Error(codes.InvalidArgument, "closing_id must be > 0"), KindDataError, "closing_id must be > 0"},
		{"NotFoundIsDataError", status.Error(codes.NotFound, "chunk 3 of consolidation 9: not found"), KindDataError, "chunk 3 of consolidation 9: not found"},
		{"AbortedIsStale", status.Error(codes.Aborted, "stale attempt"), KindStale, "stale attempt"},
		{"DeadlineExceededIsTimeout", status.Error(codes.DeadlineExceeded, "chunk exceeded its time limit"), KindTimeout, "chunk exceeded its time limit"},
		{"ResourceExhaustedIsBusy", status.Error(codes.ResourceExhausted, "worker is at its in-flight limit"), KindBusy, "worker is at its in-flight limit"},
		{"UnavailableIsOther", status.Error(codes.Unavailable, "database error 57P01"), KindOther, "database error 57P01"},
		{"InternalIsOther", status.Error(codes.Internal, "boom"), KindOther, "boom"},
		{"CanceledIsOther", status.Error(codes.Canceled, "chunk cancelled"), KindOther, "chunk cancelled"},
		{"UnknownIsOther", status.Error(codes.Unknown, "?"), KindOther, "?"},
		{"ClientDeadlineIsTimeout", status.FromContextError(context.DeadlineExceeded).Err(), KindTimeout, context.DeadlineExceeded.Error()},
		{"PlainErrorIsOther", errors.New("connection reset"), KindOther, "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ce := callError(tc.err)
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
