package e2e_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/store/storetest"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

func TestThreeWorkersGiveTheRowsOfTheRules(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 3})
		closing := c.generate(700, 11)
		want := expected(t, c.pool, closing)

		for _, policy := range []consolidationv1.ChunkPolicy{
			consolidationv1.ChunkPolicy_CHUNK_POLICY_SEED, consolidationv1.ChunkPolicy_CHUNK_POLICY_COST_WEIGHTED,
		} {
			req := &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkPolicy: policy, Force: true}
			resp := c.consolidate(req)
			require.Equal(t, int32(700), resp.GetTotalEmployees())
			require.Greater(t, resp.GetTotalChunks(), int32(1))
			final := c.waitEnd(resp.GetConsolidationId(), time.Minute)
			require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()), final.GetError())
			require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, final.GetStatus())
			require.Equal(t, domain.EstadoConsolidados, c.estado(closing))
			requireResultsEqual(t, c.pool, closing, want)

			// Control totals: the run's sums are those of the rules, verified.
			var haberes, descuentos, liquido int64
			for _, w := range want {
				haberes += int64(w.TotalHaberes)
				descuentos += int64(w.TotalDescuentos)
				liquido += int64(w.LiquidoPagar)
			}
			tot := final.GetControlTotals()
			require.True(t, tot.GetVerified())
			require.Equal(t, haberes, tot.GetTotalHaberesCents())
			require.Equal(t, descuentos, tot.GetTotalDescuentosCents())
			require.Equal(t, liquido, tot.GetLiquidoPagarCents())
			require.Positive(t, final.GetUnmatchedNovedades())

			// The metrics row, with what can be measured.
			m, err := store.GetMetrics(context.Background(), c.pool, closing)
			require.NoError(t, err)
			require.Equal(t, resp.GetConsolidationId(), m.RunID)
			require.Equal(t, 700, m.TotalEmpleados)
			require.Equal(t, int(resp.GetTotalChunks()), m.ChunksProcesados)
			require.Equal(t, m.ChunksProcesados, m.ChunksExitosos)
			require.Equal(t, final.GetRecordsCreated(), m.RegistrosCreados)
			require.Positive(t, m.TiempoTotal)
			require.Positive(t, m.ThroughputEmpleadosSec)
			require.Positive(t, m.MemoriaPicoMB)
			require.Positive(t, m.WorkersUtilizados)
			require.LessOrEqual(t, m.WorkersUtilizados, 3)
			require.Equal(t, final.GetMetrics().GetRegistrosCreados(), m.RegistrosCreados)
		}
	})
}

func TestEmptyClosing(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 1})
		closing := c.generate(0, 1)
		_, err := c.pool.Exec(context.Background(), "DELETE FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1", closing)
		require.NoError(t, err)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		require.Zero(t, resp.GetTotalChunks())
		final := c.waitEnd(resp.GetConsolidationId(), 30*time.Second)
		require.Equal(t, domain.EstadoConsolidados, domain.Estado(final.GetEstado()))
		require.Zero(t, final.GetEmployeesConsolidated())
		m, err := store.GetMetrics(context.Background(), c.pool, closing)
		require.NoError(t, err)
		require.Zero(t, m.TotalEmpleados)
		require.Zero(t, m.ChunksProcesados)
		got, err := storetest.ReadResults(context.Background(), c.pool, closing)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func TestConcurrentConsolidateOfOneClosing(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 2})
		closing := c.generate(1500, 3)

		const callers = 8
		var wg sync.WaitGroup
		results := make([]error, callers)
		ids := make([]int64, callers)
		for i := range callers {
			wg.Go(func() {
				resp, err := c.client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{ClosingId: closing})
				results[i] = err
				ids[i] = resp.GetConsolidationId()
			})
		}
		wg.Wait()
		var started int64
		for i, err := range results {
			if err == nil {
				require.Zero(t, started, "two runs started")
				started = ids[i]
				continue
			}
			require.Equal(t, codes.AlreadyExists, status.Code(err), err.Error())
		}
		require.NotZero(t, started)
		for _, err := range results {
			if err != nil {
				require.Contains(t, status.Convert(err).Message(), fmt.Sprintf("consolidation %d", started))
			}
		}
		var runs int
		require.NoError(t, c.pool.QueryRow(context.Background(), "SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closing).Scan(&runs))
		require.Equal(t, 1, runs)
		c.waitEnd(started, time.Minute)
	})
}

func TestTwoClosingsAtOnceDoNotMix(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 3})
	a, b := c.generate(900, 21), c.generate(400, 22)
	// The same people in both closings: RUTs collide across closings on purpose.
	_, err := c.pool.Exec(context.Background(), `
		UPDATE nomina_empleado_cierre e SET rut = s.rut
		FROM (SELECT rut, row_number() OVER (ORDER BY id) AS n FROM nomina_empleado_cierre WHERE cierre_id = $1) s,
		     (SELECT id, row_number() OVER (ORDER BY id) AS n FROM nomina_empleado_cierre WHERE cierre_id = $2) t
		WHERE e.id = t.id AND s.n = t.n`, a, b)
	require.NoError(t, err)
	_, err = c.pool.Exec(context.Background(), "DELETE FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1", b)
	require.NoError(t, err)
	wantA, wantB := expected(t, c.pool, a), expected(t, c.pool, b)

	ra := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: a})
	rb := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: b})
	fa, fb := c.waitEnd(ra.GetConsolidationId(), time.Minute), c.waitEnd(rb.GetConsolidationId(), time.Minute)
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(fa.GetEstado()))
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(fb.GetEstado()))
	requireResultsEqual(t, c.pool, a, wantA)
	requireResultsEqual(t, c.pool, b, wantB)
	require.Equal(t, int32(900), fa.GetEmployeesConsolidated())
	require.Equal(t, int32(400), fb.GetEmployeesConsolidated())
	require.Equal(t, int32(900), fa.GetProgress().GetEmployeesDone())
	require.Equal(t, int32(400), fb.GetProgress().GetEmployeesDone())

	// Each run's Redis progress counts its own chunks only.
	for _, r := range []*consolidationv1.Consolidation{fa, fb} {
		p := c.redisHash(r.GetConsolidationId(), "progress")
		require.Equal(t, itoa(int64(r.GetTotalChunks())), p["chunks_completados"])
		require.Equal(t, itoa(int64(r.GetTotalEmployees())), p["empleados_procesados"])
		require.Equal(t, itoa(r.GetClosingId()), p["closing_id"])

		// And the old Celery design's hashes of each closing show that closing's run, done.
		s := c.redisHashNamed("progress_cierre_" + itoa(r.GetClosingId()))
		require.Equal(t, itoa(r.GetConsolidationId()), s["consolidation_id"])
		require.Equal(t, itoa(int64(r.GetTotalChunks())), s["total_chunks"])
		require.Equal(t, s["total_chunks"], s["chunks_completados"])
		require.Equal(t, "100", s["progreso_porcentaje"])
		require.Equal(t, itoa(int64(r.GetTotalEmployees())), s["empleados_procesados"])
		require.Eventually(t, func() bool { // written just after the run's end
			m := c.redisHashNamed("metrics_cierre_" + itoa(r.GetClosingId()))
			return m["consolidation_id"] == itoa(r.GetConsolidationId()) && m["throughput_empleados_sec"] != ""
		}, 10*time.Second, 50*time.Millisecond)
	}
}

func TestWatchStreamsUntilTheEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2})
	closing := c.generate(3000, 5)
	resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})

	stream, err := c.client.WatchConsolidation(context.Background(), &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ClosingId{ClosingId: closing}})
	require.NoError(t, err)
	var msgs []*consolidationv1.WatchConsolidationResponse
	for {
		m, err := stream.Recv()
		if err != nil {
			require.ErrorIs(t, err, ioEOF)
			break
		}
		msgs = append(msgs, m)
	}
	require.GreaterOrEqual(t, len(msgs), 2)
	last := msgs[len(msgs)-1]
	require.NotNil(t, last.GetFinal())
	require.Equal(t, resp.GetConsolidationId(), last.GetFinal().GetConsolidationId())
	require.Equal(t, domain.EstadoConsolidados, domain.Estado(last.GetFinal().GetEstado()))
	require.Equal(t, last.GetProgress().GetTotalChunks(), last.GetProgress().GetChunksDone())
	require.Equal(t, 100.0, last.GetProgress().GetPercent())
	for i := 1; i < len(msgs); i++ {
		require.GreaterOrEqual(t, msgs[i].GetProgress().GetChunksDone(), msgs[i-1].GetProgress().GetChunksDone())
		require.Nil(t, msgs[i-1].GetFinal())
	}

	// A watch on a finished run returns its final state at once.
	stream, err = c.client.WatchConsolidation(context.Background(), &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: resp.GetConsolidationId()}})
	require.NoError(t, err)
	m, err := stream.Recv()
	require.NoError(t, err)
	require.NotNil(t, m.GetFinal())
	_, err = stream.Recv()
	require.ErrorIs(t, err, ioEOF)
}
