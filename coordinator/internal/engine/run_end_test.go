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
	const denied = "dispatching chunk 0: database error 42501 insufficient_privilege"
	const totalsMsg = "control totals disagree: the ledger and the written rows do not add up to the same amounts"

	for _, tc := range []struct {
		name string
		f    runFacts
		want store.RunEnd
	}{
		{"EveryEmployeeConsolidated", runFacts{Employees: 300, EmployeesDone: 300, Totals: agree},
			store.RunEnd{Estado: domain.EstadoConsolidados, Totals: written, TotalsVerified: true}},
		{"EmptyClosingHasNothingToFail", runFacts{},
			store.RunEnd{Estado: domain.EstadoConsolidados, TotalsVerified: true}},
		{"OneEmployeeOfOne", runFacts{Employees: 1, EmployeesDone: 1, Totals: agree},
			store.RunEnd{Estado: domain.EstadoConsolidados, Totals: written, TotalsVerified: true}},
		{"OnePoisonEmployeeIsPartial", runFacts{Employees: 300, EmployeesDone: 299, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 300 employees failed", Totals: written, TotalsVerified: true}},
		{"ExactlyHalfIsPartialRowsKept", runFacts{Employees: 300, EmployeesDone: 150, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "150 of 300 employees failed", Totals: written, TotalsVerified: true}},
		{"HalfOfAnOddCountRoundsAgainst", runFacts{Employees: 301, EmployeesDone: 150, Totals: agree},
			store.RunEnd{Estado: domain.EstadoError, Error: "151 of 301 employees failed", RemoveRows: true, Totals: written, TotalsVerified: true}},
		{"OneOfTwoIsHalf", runFacts{Employees: 2, EmployeesDone: 1, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 2 employees failed", Totals: written, TotalsVerified: true}},
		{"JustOverHalf", runFacts{Employees: 7, EmployeesDone: 4, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "3 of 7 employees failed", Totals: written, TotalsVerified: true}},
		{"WorkerKillersUnderHalfStillPartial", runFacts{Employees: 300, EmployeesDone: 299,
			WorkerKillers: []int64{42}, WorkerKillersTotal: 1, Totals: agree},
			store.RunEnd{Estado: domain.EstadoParcial, Error: "1 of 300 employees failed", Totals: written, TotalsVerified: true}},
		{"AllFailedOnData", runFacts{Employees: 5},
			store.RunEnd{Estado: domain.EstadoError, Error: "5 of 5 employees failed", RemoveRows: true, TotalsVerified: true}},
		{"MostFailedWithAWorkerKillerIsErrorRecursos", runFacts{Employees: 10, EmployeesDone: 4,
			WorkerKillers: []int64{11, 17}, WorkerKillersTotal: 2, Totals: agree},
			store.RunEnd{Estado: domain.EstadoErrorRecursos, RemoveRows: true, Totals: written, TotalsVerified: true,
				Error: "6 of 10 employees failed; workers died processing alone employee rows 11, 17"}},
		{"ErrorRecursosSaysHowManyMore", runFacts{Employees: 100, EmployeesDone: 1,
			WorkerKillers: []int64{3, 5}, WorkerKillersTotal: 40},
			store.RunEnd{Estado: domain.EstadoErrorRecursos, RemoveRows: true, TotalsVerified: true,
				Error: "99 of 100 employees failed; workers died processing alone employee rows 3, 5 and 38 more"}},
		{"TotalsDisagreeDespiteEveryEmployee", runFacts{Employees: 300, EmployeesDone: 300, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoError, Error: totalsMsg, RemoveRows: true, Totals: short}},
		{"TotalsDisagreeBeatPartial", runFacts{Employees: 300, EmployeesDone: 200, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoError, Error: totalsMsg, RemoveRows: true, Totals: short}},
		{"TotalsDisagreeBeatErrorRecursos", runFacts{Employees: 300, EmployeesDone: 100, WorkerKillers: []int64{1},
			WorkerKillersTotal: 1, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoError, Error: totalsMsg, RemoveRows: true, Totals: short}},
		{"CancelWinsOverEveryChunk", runFacts{Cancelled: true, Employees: 6, EmployeesDone: 6, Totals: agree},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"CancelWinsOverDisagreeingTotals", runFacts{Cancelled: true, Employees: 6, EmployeesDone: 1, Totals: disagree},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"CancelWinsOverTheDeadline", runFacts{Cancelled: true, DeadlinePassed: true},
			store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}},
		{"DeadlineRemovesRows", runFacts{DeadlinePassed: true, Employees: 6, EmployeesDone: 5, Totals: agree},
			store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true, Interrupted: true}},
		{"DeadlineOfAnEmptyRun", runFacts{DeadlinePassed: true},
			store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true, Interrupted: true}},
		{"PermanentDatabaseErrorIsErrorRowsRemoved", runFacts{Failure: denied},
			store.RunEnd{Estado: domain.EstadoError, Error: denied, RemoveRows: true, Interrupted: true}},
		{"PermanentDatabaseErrorBeatsEveryChunk", runFacts{Failure: denied, Employees: 6, EmployeesDone: 6, Totals: agree},
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
			&runFailure{Text: "dispatching chunk 0: database error 42501 insufficient_privilege"}},
		{"NamesTableAndColumnNotTheMessage", &pgconn.PgError{Code: "42703", Message: `column "x" of SELECT secret`,
			TableName: "nomina_empleado_consolidado", ColumnName: "fecha_consolidacion"},
			&runFailure{Text: "dispatching chunk 0: database error 42703 undefined_column table nomina_empleado_consolidado column fecha_consolidacion"}},
		{"SessionKilledIsRetried", &pgconn.PgError{Code: "57P01"}, nil},
		{"DeadlockIsRetried", &pgconn.PgError{Code: "40P01"}, nil},
		{"TooManyConnectionsIsRetried", &pgconn.PgError{Code: "53300"}, nil},
		{"ConnectionLostIsRetried", errors.New("unexpected EOF"), nil},
		{"TimeoutIsRetried", context.DeadlineExceeded, nil},
		{"NoError", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, asRunFailure("dispatching chunk 0", tc.err))
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
		{"NotSplittable", fmt.Errorf("splitting chunk 3: %w", store.ErrNotSplittable), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, dbTransient(tc.err))
		})
	}
}
