package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// overflow makes one employee's total_haberes exceed numeric(12,2) and returns the
// employee's libro row id.
func (c *cluster) overflow(closing int64, nth int) int64 {
	c.t.Helper()
	ctx := context.Background()
	var id int64
	require.NoError(c.t, c.pool.QueryRow(ctx, `SELECT id FROM nomina_empleado_cierre WHERE cierre_id = $1
		ORDER BY id OFFSET $2 LIMIT 1`, closing, nth).Scan(&id))
	_, err := c.pool.Exec(ctx, `UPDATE nomina_registro_concepto_empleado SET valor = 9999999999.99
		WHERE empleado_id = $1 AND trim(codigo_concepto) = 'SB'`, id)
	require.NoError(c.t, err)
	return id
}

func (c *cluster) fix(employee int64) {
	c.t.Helper()
	_, err := c.pool.Exec(context.Background(), `UPDATE nomina_registro_concepto_empleado SET valor = 1234567.89
		WHERE empleado_id = $1 AND trim(codigo_concepto) = 'SB'`, employee)
	require.NoError(c.t, err)
}

func TestChunkThatKeepsFailing(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 2})
		closing := c.generate(400, 121)
		bad := c.overflow(closing, 250) // in chunk 2 of 4

		first := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
		final := c.waitEnd(first.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoParcial, domain.Estado(final.GetEstado()))
		require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_PARTIAL, final.GetStatus())
		require.Equal(t, domain.EstadoParcial, c.estado(closing))
		require.Equal(t, int32(3), final.GetChunksSucceeded())
		require.Equal(t, int32(1), final.GetChunksFailed())
		require.Len(t, final.GetFailedChunks(), 1)
		fc := final.GetFailedChunks()[0]
		require.Equal(t, int32(2), fc.GetChunkIndex())
		require.Contains(t, fc.GetError(), "employee row "+itoa(bad))
		require.Contains(t, fc.GetError(), "total_haberes")
		require.Equal(t, int32(1), fc.GetAttempts(), "a data error is not retried")

		// The other chunks' rows are kept, and are right.
		c.fix(bad)
		want := expected(t, c.pool, closing)
		var kept []rules.Consolidated
		for _, w := range want {
			if w.EmpleadoOrigenID < fc.GetFirstEmployeeId() || w.EmpleadoOrigenID > fc.GetLastEmployeeId() {
				kept = append(kept, w)
			}
		}
		require.Len(t, kept, 300)
		requireResultsEqual(t, c.pool, closing, kept)

		// retry_failed processes only the failed chunk, and completes the closing.
		retry := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing,
			Mode: consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED})
		require.Equal(t, int32(1), retry.GetTotalChunks())
		require.Equal(t, int32(100), retry.GetTotalEmployees())
		rf := c.waitEnd(retry.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoConsolidados, domain.Estado(rf.GetEstado()), rf.GetError())
		require.Equal(t, consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED, rf.GetMode())
		requireResultsEqual(t, c.pool, closing, want)

		// And a full run (forced, from datos_consolidados) gives the same rows.
		full := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true})
		ff := c.waitEnd(full.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoConsolidados, domain.Estado(ff.GetEstado()))
		requireResultsEqual(t, c.pool, closing, want)
	})
}

func TestMostChunksFailing(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 2})
		closing := c.generate(300, 131)
		c.overflow(closing, 10)  // chunk 0
		c.overflow(closing, 150) // chunk 1
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 100})
		final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoError, domain.Estado(final.GetEstado()))
		require.Equal(t, int32(2), final.GetChunksFailed())
		require.Equal(t, domain.EstadoError, c.estado(closing))
		c.requireNoRows(closing)
		m, err := store.GetMetrics(context.Background(), c.pool, closing)
		require.NoError(t, err)
		require.Equal(t, 1, m.ChunksExitosos)
		require.Zero(t, m.RegistrosCreados, "the metrics row counts rows the run left")
	})
}
