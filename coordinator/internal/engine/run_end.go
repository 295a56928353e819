package engine

import (
	"fmt"

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
	// Read from the ledger only when the run was neither cancelled nor timed out.
	ChunksSucceeded int
	TotalChunks     int
	Totals          store.ControlTotals
}

// decideRunEnd is the end-state rule (SPEC section 6), counted in chunks: a cancel
// → consolidacion_cancelada, the time limit → timeout_consolidacion (both remove
// the run's rows); a permanent database error that stopped the driver →
// error_consolidacion with that error, rows removed (these three are Interrupted
// ends: the chunks still open fail with the run; any other end needs them ended); control totals that disagree
// → error_consolidacion; every chunk
// succeeded → datos_consolidados; at least half → consolidacion_parcial, rows kept;
// fewer → error_consolidacion, rows removed.
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
	ok, k := f.ChunksSucceeded, f.TotalChunks
	switch {
	case !f.Totals.Agree():
		o.Estado, o.RemoveRows = domain.EstadoError, true
		o.Error = "control totals disagree: the ledger and the written rows do not add up to the same amounts"
	case ok == k:
		o.Estado = domain.EstadoConsolidados
	case 2*ok >= k:
		o.Estado = domain.EstadoParcial
		o.Error = fmt.Sprintf("%d of %d chunks failed", k-ok, k)
	default:
		o.Estado, o.RemoveRows = domain.EstadoError, true
		o.Error = fmt.Sprintf("%d of %d chunks failed", k-ok, k)
	}
	return o
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
