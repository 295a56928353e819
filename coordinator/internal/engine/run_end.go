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
	// Read from the ledger only when the run was neither cancelled nor timed out.
	ChunksSucceeded int
	TotalChunks     int
	Totals          store.ControlTotals
}

// decideRunEnd is the end-state rule (SPEC section 6), counted in chunks: a cancel
// → consolidacion_cancelada, the time limit → timeout_consolidacion (both remove
// the run's rows); control totals that disagree → error_consolidacion; every chunk
// succeeded → datos_consolidados; at least half → consolidacion_parcial, rows kept;
// fewer → error_consolidacion, rows removed.
func decideRunEnd(f runFacts) store.RunEnd {
	switch {
	case f.Cancelled:
		return store.RunEnd{Estado: domain.EstadoCancelada, Error: "cancelled", RemoveRows: true}
	case f.DeadlinePassed:
		return store.RunEnd{Estado: domain.EstadoTimeout, Error: "run exceeded its time limit", RemoveRows: true}
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
