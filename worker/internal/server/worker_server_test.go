package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
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
