package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// runFacts is what decides how a run ends.
type runFacts struct {
	Cancelled      bool // a cancel stopped the run
	DeadlinePassed bool // the run passed its time limit
	// Failure is what a permanent database error that stopped the driver says
	// (runFailure); "" when none did.
	Failure string
	// Read from the ledger only when the run was neither cancelled nor timed out:
	// the run's employees and those consolidated (the employees of its succeeded
	// chunks; a split chunk counts in its halves); the rest failed.
	Employees     int
	EmployeesDone int
	// WorkerKillers are libro ids of failed employees whose workers died on every
	// attempt, each processed alone (at most maxKillersNamed), and
	// WorkerKillersTotal counts them all.
	WorkerKillers      []int64
	WorkerKillersTotal int
	Totals             store.ControlTotals
}

// maxKillersNamed bounds the employees an error_recursos error names.
const maxKillersNamed = 20

// decideRunEnd is the end-state rule (docs/lifecycle.md#how-a-run-ends), counted in employees: a
// cancel → consolidacion_cancelada, the time limit → timeout_consolidacion (both
// remove the run's rows); a permanent database error that stopped the driver →
// error_consolidacion with that error, rows removed (these three are Interrupted
// ends: the chunks still open fail with the run; any other end needs them ended);
// control totals that disagree → error_consolidacion; every employee consolidated
// → datos_consolidados; at least half of the run's employees → consolidacion_parcial,
// rows kept; fewer → error_recursos when workers died on a failed employee even
// alone (naming them), else error_consolidacion, rows removed either way.
func decideRunEnd(f runFacts) store.RunEnd {
	switch {
	case f.Cancelled:
		return store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true, Interrupted: true}
	case f.DeadlinePassed:
		return store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true, Interrupted: true}
	case f.Failure != "":
		return store.RunEnd{Estado: domain.EstadoError, Error: f.Failure, RemoveRows: true, Interrupted: true}
	}
	o := store.RunEnd{Totals: f.Totals.Written, TotalsVerified: f.Totals.Agree()}
	ok, n := f.EmployeesDone, f.Employees
	failed := fmt.Sprintf("%d of %d employees failed", n-ok, n)
	switch {
	case !f.Totals.Agree():
		o.Estado, o.RemoveRows = domain.EstadoError, true
		o.Error = "control totals disagree: the ledger and the written rows do not add up to the same amounts"
	case ok == n:
		o.Estado = domain.EstadoConsolidados
	case domain.PartialKeepsRows(ok, n):
		o.Estado, o.Error = domain.EstadoParcial, failed
	case f.WorkerKillersTotal > 0:
		o.Estado, o.RemoveRows = domain.EstadoErrorRecursos, true
		o.Error = failed + "; workers died processing alone " + namedIDs(f.WorkerKillers, f.WorkerKillersTotal)
	default:
		o.Estado, o.RemoveRows, o.Error = domain.EstadoError, true, failed
	}
	return o
}

// namedIDs names libro employees by row id: "employee rows 4, 9 and 3 more".
func namedIDs(ids []int64, total int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	s := "employee rows " + strings.Join(parts, ", ")
	if total > len(ids) {
		s += fmt.Sprintf(" and %d more", total-len(ids))
	}
	return s
}

// runFailure is a permanent database error that stopped the driver of a run (a
// privilege not granted, a table or column missing, a constraint): retrying
// cannot help, so the run ends error_consolidacion with Text recorded on it.
type runFailure struct{ Text string }

func (f *runFailure) Error() string { return f.Text }

// asRunFailure judges an error the driver met while doing step: a permanent
// database error (store.PermanentDBError) is a *runFailure naming the step and
// what PostgreSQL reported (never its message: it may quote SQL or data); any
// other error is nil, left for the reconciler to retry.
func asRunFailure(step string, err error) *runFailure {
	pgErr, permanent := store.PermanentDBError(err)
	if !permanent {
		return nil
	}
	return &runFailure{Text: step + ": " + store.DescribeDBError(pgErr)}
}
