package e2e_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// libroIDs are the libro row ids of a closing, in id order.
func (c *cluster) libroIDs(closing int64) []int64 {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), "SELECT id FROM nomina_empleado_cierre WHERE cierre_id = $1 ORDER BY id", closing)
	require.NoError(c.t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(c.t, err)
	return ids
}

// without is want less the employees with the given libro ids.
func without(want []rules.Consolidated, ids ...int64) []rules.Consolidated {
	return slices.DeleteFunc(slices.Clone(want), func(w rules.Consolidated) bool { return slices.Contains(ids, w.EmpleadoOrigenID) })
}

// failedIDs are the libro ids a report lists as failed, with whether workers died.
func failedIDs(c *consolidationv1.Consolidation) map[int64]bool {
	out := map[int64]bool{}
	for _, f := range c.GetFailedEmployees() {
		out[f.GetEmployeeId()] = f.GetWorkerDied()
	}
	return out
}

func TestPoisonEmployeeFailsAlone(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 2})
		closing := c.generate(300, 121)
		bad := c.overflow(closing, 200) // in the second chunk of 150

		first := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: 150})
		require.Equal(t, int32(2), first.GetTotalChunks())
		final := c.waitEnd(first.GetConsolidationId(), 2*time.Minute)
		require.Equal(t, domain.EstadoParcial, domain.Estado(final.GetEstado()), final.GetError())
		require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_PARTIAL, final.GetStatus())
		require.Equal(t, domain.EstadoParcial, c.estado(closing))
		require.Equal(t, "1 of 300 employees failed", final.GetError())
		require.Equal(t, int32(299), final.GetEmployeesConsolidated())
		require.Equal(t, int32(300), final.GetTotalEmployees())

		// Exactly the poison employee failed, alone, on its data.
		require.Equal(t, int32(1), final.GetFailedEmployeesTotal())
		require.Len(t, final.GetFailedEmployees(), 1)
		fe := final.GetFailedEmployees()[0]
		require.Equal(t, bad, fe.GetEmployeeId())
		require.Contains(t, fe.GetError(), "employee row "+itoa(bad)+": total_haberes")
		require.False(t, fe.GetWorkerDied())
		var badRUT string
		require.NoError(t, c.pool.QueryRow(context.Background(), "SELECT rut FROM nomina_empleado_cierre WHERE id = $1", bad).Scan(&badRUT))
		require.Equal(t, badRUT, fe.GetRut(), "named as ExplainEmployee takes it")
		require.Equal(t, int32(1), final.GetChunksFailed())
		require.Zero(t, final.GetChunksCancelled())
		require.Equal(t, final.GetTotalChunks(), final.GetChunksSucceeded()+final.GetChunksFailed()+final.GetChunksSplit(),
			"the chunks add up")
		require.Len(t, final.GetFailedChunks(), 1, "split chunks are not listed as failed")
		fc := final.GetFailedChunks()[0]
		require.Equal(t, fe.GetChunkIndex(), fc.GetChunkIndex())
		require.Equal(t, []int64{bad, bad}, []int64{fc.GetFirstEmployeeId(), fc.GetLastEmployeeId()})
		require.Equal(t, int32(1), fc.GetAttempts(), "a data error is not retried")
		// 150 halves down to one employee in 7 or 8 splits (by where it falls), each
		// adding two chunks.
		require.Contains(t, []int32{2 + 2*7, 2 + 2*8}, final.GetTotalChunks())
		require.Equal(t, final.GetTotalChunks(), final.GetProgress().GetChunksDone())
		require.Equal(t, float64(100), final.GetProgress().GetPercent())
		m := final.GetMetrics()
		require.Equal(t, final.GetTotalChunks(), m.GetChunksProcesados())
		require.Equal(t, final.GetChunksSucceeded(), m.GetChunksExitosos())
		require.Equal(t, int32(299), m.GetTotalEmpleados())

		// Every other employee's rows are a clean run's.
		c.fix(bad)
		want := expected(t, c.pool, closing)
		requireResultsEqual(t, c.pool, closing, without(want, bad))

		// retry_failed processes exactly the failed employee, and completes the closing.
		retry := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing,
			Mode: consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED})
		require.Equal(t, int32(1), retry.GetTotalChunks())
		require.Equal(t, int32(1), retry.GetTotalEmployees())
		rf := c.waitEnd(retry.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoConsolidados, domain.Estado(rf.GetEstado()), rf.GetError())
		require.Equal(t, consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED, rf.GetMode())
		require.Empty(t, rf.GetFailedEmployees())
		requireResultsEqual(t, c.pool, closing, want)
		// Its own totals are the retried employee's; the closing's are everyone's.
		require.Equal(t, int32(1), rf.GetEmployeesConsolidated())
		var liquido, haberes int64
		for _, w := range want {
			liquido += int64(w.LiquidoPagar)
			haberes += int64(w.TotalHaberes)
		}
		ct := rf.GetClosingTotals()
		require.Equal(t, int32(300), ct.GetEmployees())
		require.Equal(t, liquido, ct.GetLiquidoPagarCents())
		require.Equal(t, haberes, ct.GetTotalHaberesCents())
		require.Less(t, rf.GetControlTotals().GetLiquidoPagarCents(), liquido)
		require.Nil(t, final.GetClosingTotals(), "a full run's totals are the closing's")

		// And a full run (forced, from datos_consolidados) gives the same rows.
		full := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true})
		ff := c.waitEnd(full.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoConsolidados, domain.Estado(ff.GetEstado()))
		requireResultsEqual(t, c.pool, closing, want)
	})
}

func TestMostEmployeesFailing(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 2})
		closing := c.generate(6, 131)
		bad := []int64{c.overflow(closing, 0), c.overflow(closing, 2), c.overflow(closing, 3), c.overflow(closing, 5)}
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, domain.EstadoError, domain.Estado(final.GetEstado()))
		require.Equal(t, "4 of 6 employees failed", final.GetError())
		require.Equal(t, domain.EstadoError, c.estado(closing))
		require.Equal(t, int32(4), final.GetFailedEmployeesTotal())
		require.Equal(t, map[int64]bool{bad[0]: false, bad[1]: false, bad[2]: false, bad[3]: false}, failedIDs(final))
		c.requireNoRows(closing)
		m, err := store.GetMetrics(context.Background(), c.pool, closing)
		require.NoError(t, err)
		require.Equal(t, int(final.GetChunksSucceeded()), m.ChunksExitosos)
		require.Positive(t, m.ChunksExitosos, "the two good employees were consolidated before the rows were removed")
		require.Zero(t, m.RegistrosCreados, "the metrics row counts rows the run left")
	})
}
