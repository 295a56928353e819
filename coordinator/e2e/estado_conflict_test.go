package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestApplicationWritesEstadoMidRun is a stale save of the closing by the payroll
// application while a run is in progress: the run ends with its own outcome in
// the ledger and its rows written, the application's estado is kept, and the
// conflict is shown by GetConsolidation and counted (docs/rules.md, "The
// application writing estado mid-run").
func TestApplicationWritesEstadoMidRun(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	// Chunk 1 stalls before its commit: the run is surely still going when the
	// application writes.
	c := newCluster(t, clusterOptions{workers: 2, workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=1=2s"},
		coordEnv: []string{"METRICS_ADDR=" + metricsAddr}})
	closing := c.generate(400, 19)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
	runID := resp.GetConsolidationId()

	tag, err := c.pool.Exec(context.Background(), "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1 AND estado = $3",
		closing, domain.EstadoVerificado, domain.EstadoConsolidando)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "the closing was consolidating when the application wrote")

	final := c.waitEnd(runID, 2*time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())
	require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, final.GetStatus())
	require.Equal(t, string(domain.EstadoVerificado), final.GetClosingEstadoFound())
	require.Equal(t, domain.EstadoVerificado, c.estado(closing), "the application's estado is kept")
	requireResultsEqual(t, c.pool, closing, expected(t, c.pool, closing))

	require.Eventually(t, func() bool {
		return scrape(t, metricsAddr).sample(
			`consolidation_closing_estado_conflicts_total{estado_found="verificado_sin_discrepancias"`) == "1"
	}, 10*time.Second, 50*time.Millisecond, "the conflict is counted once")

	// A run that meets no conflict shows none.
	other := c.generate(50, 20)
	clean := c.waitEnd(c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: other}).GetConsolidationId(), time.Minute)
	require.Empty(t, clean.GetClosingEstadoFound())
	require.Equal(t, domain.EstadoConsolidados, c.estado(other))
}
