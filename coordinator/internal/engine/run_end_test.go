package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestDecideRunEnd(t *testing.T) {
	t.Parallel()
	written := store.WriteSummary{Employees: 300, Records: 2100, TotalHaberes: money.Cents(123456789),
		TotalDescuentos: money.Cents(2345678), LiquidoPagar: money.Cents(121111111)}
	agree := store.ControlTotals{Ledger: written, Written: written}
	short := written
	short.LiquidoPagar--
	disagree := store.ControlTotals{Ledger: written, Written: short}
	const denied = "clearing previous results: database error 42501 insufficient_privilege"
	const totalsMsg = "control totals disagree: the ledger and the written rows do not add up to the same amounts"

	for _, tc := range []struct {
		name string
		f    runFacts
		want store.RunEnd
	}{
		{"EveryChunkSucceeded", runFacts{ChunksSucceeded: 6, TotalChunks: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoConsolidados, Totals: written, TotalsVerified: true}},
		{"EmptyClosingHasNothingToFail", runFacts{},
			store.RunEnd{Estado: domain.EstadoConsolidados, TotalsVerified: true}},
		{"OneChunkOfOne", runFacts{ChunksSucceeded: 1, TotalChunks: 1, Totals: agree},
			store.RunEnd{Estado: domain.EstadoConsolidados, Totals: written, TotalsVerified: true}},
		{"OneFailedIsPartial", runFacts{ChunksSucceeded: 5, TotalChunks: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 6 chunks failed", Totals: written, TotalsVerified: true}},
		{"ExactlyHalfIsPartialRowsKept", runFacts{ChunksSucceeded: 3, TotalChunks: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "3 of 6 chunks failed", Totals: written, TotalsVerified: true}},
		{"OneOfTwoIsHalf", runFacts{ChunksSucceeded: 1, TotalChunks: 2, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 2 chunks failed", Totals: written, TotalsVerified: true}},
		{"JustUnderHalfIsErrorRowsRemoved", runFacts{ChunksSucceeded: 3, TotalChunks: 7, Totals: agree},
			store.RunEnd{Estado: domain.EstadoError, Error: "4 of 7 chunks failed", RemoveRows: true, Totals: written, TotalsVerified: true}},
		{"JustOverHalf", runFacts{ChunksSucceeded: 4, TotalChunks: 7, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "3 of 7 chunks failed", Totals: written, TotalsVerified: true}},
		{"AllFailed", runFacts{ChunksSucceeded: 0, TotalChunks: 5},
			store.RunEnd{Estado: domain.EstadoError, Error: "5 of 5 chunks failed", RemoveRows: true, TotalsVerified: true}},
		{"TotalsDisagreeDespiteEveryChunk", runFacts{ChunksSucceeded: 6, TotalChunks: 6, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoError, Error: totalsMsg, RemoveRows: true, Totals: short}},
		{"TotalsDisagreeBeatPartial", runFacts{ChunksSucceeded: 4, TotalChunks: 6, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoError, Error: totalsMsg, RemoveRows: true, Totals: short}},
		{"CancelWinsOverEveryChunk", runFacts{Cancelled: true, ChunksSucceeded: 6, TotalChunks: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"CancelWinsOverDisagreeingTotals", runFacts{Cancelled: true, ChunksSucceeded: 1, TotalChunks: 6, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"CancelWinsOverTheDeadline", runFacts{Cancelled: true, DeadlinePassed: true},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"DeadlineRemovesRows", runFacts{DeadlinePassed: true, ChunksSucceeded: 5, TotalChunks: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true, Interrupted: true}},
		{"DeadlineOfAnEmptyRun", runFacts{DeadlinePassed: true},
			store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true, Interrupted: true}},
		{"PermanentDatabaseErrorIsErrorRowsRemoved", runFacts{Failure: denied},
			store.RunEnd{Estado: domain.EstadoError, Error: denied, RemoveRows: true, Interrupted: true}},
		{"PermanentDatabaseErrorBeatsEveryChunk", runFacts{Failure: denied, ChunksSucceeded: 6, TotalChunks: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoError, Error: denied, RemoveRows: true, Interrupted: true}},
		{"CancelWinsOverAPermanentDatabaseError", runFacts{Cancelled: true, Failure: denied},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"DeadlineWinsOverAPermanentDatabaseError", runFacts{DeadlinePassed: true, Failure: denied},
			store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true, Interrupted: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, decideRunEnd(tc.f))
		})
	}
}

func TestAsRunFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want *runFailure
	}{
		{"PermanentEndsTheRun", fmt.Errorf("clearing: %w", &pgconn.PgError{Code: "42501", Message: "permission denied for table x"}),
			&runFailure{Text: "clearing previous results: database error 42501 insufficient_privilege"}},
		{"NamesTableAndColumnNotTheMessage", &pgconn.PgError{Code: "42703", Message: `column "x" of SELECT secret`,
			TableName: "nomina_empleado_consolidado", ColumnName: "fecha_consolidacion"},
			&runFailure{Text: "clearing previous results: database error 42703 undefined_column table nomina_empleado_consolidado column fecha_consolidacion"}},
		{"SessionKilledIsRetried", &pgconn.PgError{Code: "57P01"}, nil},
		{"DeadlockIsRetried", &pgconn.PgError{Code: "40P01"}, nil},
		{"TooManyConnectionsIsRetried", &pgconn.PgError{Code: "53300"}, nil},
		{"ConnectionLostIsRetried", errors.New("unexpected EOF"), nil},
		{"TimeoutIsRetried", context.DeadlineExceeded, nil},
		{"NoError", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, asRunFailure("clearing previous results", tc.err))
		})
	}
}

func TestDBTransient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"ConnectionRefused", errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
		{"SessionTerminated", &pgconn.PgError{Code: "57P01"}, true},
		{"ServerStarting", fmt.Errorf("dispatching chunk 3: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"Deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"PrivilegeNotGranted", &pgconn.PgError{Code: "42501"}, false},
		{"MissingColumn", &pgconn.PgError{Code: "42703"}, false},
		{"LeaseLost", fmt.Errorf("dispatching chunk 3: %w", store.ErrLeaseLost), false},
		{"ChunksOpen", fmt.Errorf("finishing: %w", store.ErrChunksOpen), false},
		{"CancelStored", fmt.Errorf("finishing: %w", store.ErrCancelRequested), false},
		{"NotFound", store.ErrNotFound, false},
		{"ContextEnded", fmt.Errorf("reading: %w", context.Canceled), false},
		{"ContextDeadline", context.DeadlineExceeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, dbTransient(tc.err))
		})
	}
}
