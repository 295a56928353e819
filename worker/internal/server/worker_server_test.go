package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/worker/internal/chunk"
)

func TestToStatus(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		code codes.Code
		msg  string
	}{
		{"StaleAttemptIsAborted", context.Background(), fmt.Errorf("committing: %w", store.ErrStaleAttempt),
			codes.Aborted, "chunk 3 of consolidation 9: attempt token is not the current one"},
		{"OverflowNamesTheRowAndColumn", context.Background(), &chunk.DataError{Err: fmt.Errorf("consolidating: %w",
			&rules.OverflowError{EmpleadoID: 7, Field: "total_haberes"})},
			codes.FailedPrecondition, "employee row 7: total_haberes does not fit numeric(12,2)"},
		{"BadRUTNamesTheRow", context.Background(), &chunk.DataError{Err: &store.RUTError{Table: "nomina_empleado_cierre", RowID: 12}},
			codes.FailedPrecondition, "nomina_empleado_cierre row 12: RUT does not normalize or is repeated"},
		{"OtherDataErrorsAreAFixedMessage", context.Background(), &chunk.DataError{Err: errors.New(`parsing amount "123456789012.50": out of range`)},
			codes.FailedPrecondition, "chunk 3 of consolidation 9: its data cannot be consolidated (details in the worker's log)"},
		{"DataErrorBeatsDatabaseError", context.Background(), &chunk.DataError{Err: &chunk.DatabaseError{Code: "22003", Err: errors.New("numeric field overflow")}},
			codes.FailedPrecondition, "chunk 3 of consolidation 9: its data cannot be consolidated (details in the worker's log)"},
		{"BusyIsResourceExhausted", context.Background(), chunk.ErrBusy,
			codes.ResourceExhausted, "worker is at its in-flight limit"},
		{"NotFound", context.Background(), fmt.Errorf("reading chunk 3 of consolidation 9: %w", store.ErrNotFound),
			codes.NotFound, "chunk 3 of consolidation 9 not found"},
		{"Deadline", context.Background(), fmt.Errorf("reading: %w", context.DeadlineExceeded),
			codes.DeadlineExceeded, "chunk exceeded its time limit"},
		{"Cancelled", context.Background(), context.Canceled, codes.Canceled, "chunk cancelled"},
		{"CallerGoneIsCancelled", cancelled, &chunk.DatabaseError{Code: "57014", Err: errors.New("canceling statement")},
			codes.Canceled, "chunk cancelled"},
		{"DatabaseErrorNamesOnlyItsCode", context.Background(), &chunk.DatabaseError{Code: "57P01", Err: errors.New("terminating connection; SELECT secret")},
			codes.Unavailable, "database error 57P01"},
		{"TransientDatabaseErrorIsUnavailable", context.Background(), dbError("40P01", ""),
			codes.Unavailable, "database error 40P01"},
		{"PermanentDatabaseErrorIsFailedPrecondition", context.Background(), dbError("42501", ""),
			codes.FailedPrecondition, "database error 42501 insufficient_privilege"},
		{"MissingColumnIsARefusal", context.Background(), dbError("42703", "nomina_empleado_consolidado"),
			codes.FailedPrecondition, "database error 42703 undefined_column table nomina_empleado_consolidado"},
		{"PermanentDatabaseErrorNamesItsTableNeverItsMessage", context.Background(), dbError("23514", "nomina_concepto_empleado_consolidado"),
			codes.FailedPrecondition, "database error 23514 check_violation table nomina_concepto_empleado_consolidado"},
		{"AnyOtherErrorNamesNoHost", context.Background(), errors.New("dial tcp db.internal.example:5432: connection refused"),
			codes.Unavailable, "chunk 3 of consolidation 9 failed (details in the worker's log)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := status.Convert(toStatus(tc.ctx, chunk.Request{RunID: 9, ClosingID: 4, Index: 3, Token: 5}, tc.err))
			require.Equal(t, tc.code, st.Code())
			require.Equal(t, tc.msg, st.Message())
			// Only a permanent error outside the data's classes says the database
			// refused every chunk alike (the run ends instead of splitting).
			require.Equal(t, tc.name == "PermanentDatabaseErrorIsFailedPrecondition" || tc.name == "MissingColumnIsARefusal",
				grpcx.IsDatabaseRefused(st), "database refusal")
		})
	}
}

// dbError is a *chunk.DatabaseError as the processor makes it, around a
// PostgreSQL error whose message and detail must not leave the worker.
func dbError(code, table string) error {
	pgErr := &pgconn.PgError{Code: code, TableName: table, Message: "secret SQL", Detail: "Failing row contains (12345678-5)"}
	return &chunk.DatabaseError{Code: code, Err: fmt.Errorf("committing chunk 3: %w", pgErr)}
}

func TestTakeSlot(t *testing.T) {
	t.Parallel()
	newServer := func(slotWait time.Duration) *WorkerServer {
		s := NewWorkerServer(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, 1)
		s.slotWait = slotWait
		return s
	}

	t.Run("SmallestRunServedFirstWhenSaturated", func(t *testing.T) {
		t.Parallel()
		s := newServer(time.Minute)
		release, err := s.takeSlot(t.Context(), 1, 100_000) // the big run's chunk holds the only slot
		require.NoError(t, err)
		// Two more calls of the big run, then one of a small run, wait (from any replica).
		got := make(chan int64, 3)
		for _, c := range []struct {
			run  int64
			size int
		}{{1, 100_000}, {1, 100_000}, {2, 120}} {
			before := s.slots.Queued()
			go func() {
				if rel, err := s.takeSlot(t.Context(), c.run, c.size); err == nil {
					got <- c.run
					rel()
				}
			}()
			require.Eventually(t, func() bool { return s.slots.Queued() == before+1 }, 5*time.Second, time.Millisecond)
		}
		release()
		var order []int64
		for range 3 {
			select {
			case run := <-got:
				order = append(order, run)
			case <-time.After(5 * time.Second):
				t.Fatalf("calls served: %v of 3", order)
			}
		}
		require.Equal(t, []int64{2, 1, 1}, order)
	})

	t.Run("BusyAfterTheWait", func(t *testing.T) {
		t.Parallel()
		s := newServer(10 * time.Millisecond)
		release, err := s.takeSlot(t.Context(), 1, 100)
		require.NoError(t, err)
		defer release()
		_, err = s.takeSlot(t.Context(), 2, 50)
		require.ErrorIs(t, err, chunk.ErrBusy)
		require.Zero(t, s.slots.Queued())
	})

	t.Run("NeverPastHalfTheCallsTime", func(t *testing.T) {
		t.Parallel()
		s := newServer(time.Hour)
		release, err := s.takeSlot(t.Context(), 1, 100)
		require.NoError(t, err)
		defer release()
		short, cancelShort := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancelShort()
		// The call has 2 s left: it is answered busy after 1 s, not left to run out.
		_, err = s.takeSlot(short, 2, 50)
		require.ErrorIs(t, err, chunk.ErrBusy)
		require.NoError(t, short.Err())
	})

	t.Run("HeldOnlyOnceTheSlotIsTaken", func(t *testing.T) {
		t.Parallel()
		s := newServer(time.Minute)
		first, second := &headerStream{}, &headerStream{}
		release, err := s.takeSlot(grpc.NewContextWithServerTransportStream(t.Context(), first), 1, 100)
		require.NoError(t, err)
		require.True(t, grpcx.Held(first.sent()), "the call holding the slot tells its caller")
		taken := make(chan error, 1)
		go func() {
			rel, err := s.takeSlot(grpc.NewContextWithServerTransportStream(t.Context(), second), 2, 50)
			if err == nil {
				rel()
			}
			taken <- err
		}()
		require.Eventually(t, func() bool { return s.slots.Queued() == 1 }, 5*time.Second, time.Millisecond)
		// A worker dying now dies holding the first chunk, not the second.
		require.False(t, grpcx.Held(second.sent()), "a call waiting for a slot does not hold its chunk")
		release()
		require.NoError(t, <-taken)
		require.True(t, grpcx.Held(second.sent()))
	})

	t.Run("CallEndedWhileWaiting", func(t *testing.T) {
		t.Parallel()
		s := newServer(time.Hour)
		release, err := s.takeSlot(t.Context(), 1, 100)
		require.NoError(t, err)
		defer release()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = s.takeSlot(ctx, 2, 50)
		require.ErrorIs(t, err, context.Canceled)
	})
}

// headerStream is the gRPC call a handler's context carries, recording the
// header the handler sends.
type headerStream struct {
	mu     sync.Mutex
	header metadata.MD
}

func (h *headerStream) Method() string                  { return "/consolidation.v1.WorkerService/ProcessChunk" }
func (h *headerStream) SetHeader(md metadata.MD) error  { return h.SendHeader(md) }
func (h *headerStream) SetTrailer(md metadata.MD) error { return nil }

func (h *headerStream) SendHeader(md metadata.MD) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.header = metadata.Join(h.header, md)
	return nil
}

func (h *headerStream) sent() metadata.MD {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.header.Copy()
}
