package e2e_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/pkg/pgtest"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

var ioEOF = io.EOF

// requireRefused checks a refusal's code and message, and that nothing was written.
func (c *cluster) requireRefused(req *consolidationv1.ConsolidateRequest, code codes.Code, mentions ...string) {
	c.t.Helper()
	ctx := context.Background()
	var estadoBefore string
	_ = c.pool.QueryRow(ctx, "SELECT estado FROM nomina_cierrenomina WHERE id = $1", req.GetClosingId()).Scan(&estadoBefore)
	var runsBefore int
	require.NoError(c.t, c.pool.QueryRow(ctx, "SELECT count(*) FROM consolidation_run").Scan(&runsBefore))

	_, err := c.client.Consolidate(ctx, req)
	require.Error(c.t, err)
	st := status.Convert(err)
	require.Equal(c.t, code, st.Code(), st.Message())
	for _, m := range mentions {
		require.Contains(c.t, st.Message(), m)
	}

	var runs, rows int
	require.NoError(c.t, c.pool.QueryRow(ctx, "SELECT count(*) FROM consolidation_run").Scan(&runs))
	require.Equal(c.t, runsBefore, runs, "a refused call stored a run")
	require.NoError(c.t, c.pool.QueryRow(ctx, "SELECT count(*) FROM nomina_empleado_consolidado WHERE cierre_id = $1", req.GetClosingId()).Scan(&rows))
	require.Zero(c.t, rows, "a refused call wrote results")
	var estado string
	_ = c.pool.QueryRow(ctx, "SELECT estado FROM nomina_cierrenomina WHERE id = $1", req.GetClosingId()).Scan(&estado)
	require.Equal(c.t, estadoBefore, estado, "a refused call moved estado")
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	forEachSchema(t, func(t *testing.T, schema pgtest.Schema) {
		c := newCluster(t, clusterOptions{schema: schema, workers: 1})
		ctx := context.Background()
		exec := func(sql string, args ...any) {
			t.Helper()
			_, err := c.pool.Exec(ctx, sql, args...)
			require.NoError(t, err)
		}

		t.Run("MissingClosingID", func(t *testing.T) {
			c.requireRefused(&consolidationv1.ConsolidateRequest{}, codes.InvalidArgument, "closing_id")
		})
		t.Run("NegativeClosingID", func(t *testing.T) {
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: -4}, codes.InvalidArgument, "closing_id")
		})
		t.Run("UnknownEnum", func(t *testing.T) {
			closing := c.generate(10, 1)
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing, Mode: 42}, codes.InvalidArgument, "mode")
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkPolicy: 9}, codes.InvalidArgument, "chunk_policy")
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: -1}, codes.InvalidArgument, "chunk_size")
		})
		t.Run("UnknownClosing", func(t *testing.T) {
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: 987654}, codes.NotFound, "987654")
		})
		t.Run("StateThatMayNotStart", func(t *testing.T) {
			closing := c.generate(10, 2)
			exec("UPDATE nomina_cierrenomina SET estado = 'abierto' WHERE id = $1", closing)
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.FailedPrecondition, "abierto")
			exec("UPDATE nomina_cierrenomina SET estado = 'datos_consolidados' WHERE id = $1", closing)
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.FailedPrecondition, "datos_consolidados", "force")
			exec("UPDATE nomina_cierrenomina SET estado = 'verificado_sin_discrepancias' WHERE id = $1", closing)
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing,
				Mode: consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED}, codes.FailedPrecondition, "verificado_sin_discrepancias")
		})
		t.Run("RUTsThatDoNotNormalize", func(t *testing.T) {
			closing := c.generate(40, 3)
			var libroID, novID int64
			require.NoError(t, c.pool.QueryRow(ctx, "SELECT min(id) FROM nomina_empleado_cierre WHERE cierre_id = $1", closing).Scan(&libroID))
			require.NoError(t, c.pool.QueryRow(ctx, "SELECT min(id) FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1", closing).Scan(&novID))
			exec("UPDATE nomina_empleado_cierre SET rut = '12.345.678-0' WHERE id = $1", libroID)
			exec("UPDATE nomina_empleado_cierre_novedades SET rut = 'sin rut' WHERE id = $1", novID)
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.FailedPrecondition,
				"nomina_empleado_cierre row "+itoa(libroID)+";",
				"nomina_empleado_cierre_novedades row "+itoa(novID), "2 RUT(s) do not normalize")
			// The rows are named by id: the refusal quotes no RUT.
			_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing})
			require.NotContains(t, status.Convert(err).Message(), "12.345.678")
			require.NotContains(t, status.Convert(err).Message(), "sin rut")
		})
		t.Run("ManyBadRUTsListsTwentyAndCounts", func(t *testing.T) {
			closing := c.generate(60, 4)
			exec("UPDATE nomina_empleado_cierre SET rut = rut || 'X' WHERE cierre_id = $1", closing)
			_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing})
			st := status.Convert(err)
			require.Equal(t, codes.FailedPrecondition, st.Code())
			require.Contains(t, st.Message(), "60 RUT(s) do not normalize")
			require.Contains(t, st.Message(), "and 40 more")
		})
		t.Run("RepeatedRUT", func(t *testing.T) {
			closing := c.generate(30, 5)
			var a, b int64
			require.NoError(t, c.pool.QueryRow(ctx, "SELECT min(id), max(id) FROM nomina_empleado_cierre WHERE cierre_id = $1", closing).Scan(&a, &b))
			exec("UPDATE nomina_empleado_cierre SET rut = '0012.345.678-5' WHERE id = $1", a)
			exec("UPDATE nomina_empleado_cierre SET rut = '12345678-5' WHERE id = $1", b)
			c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.FailedPrecondition,
				"nomina_empleado_cierre rows ["+itoa(a)+" "+itoa(b)+"]")
			_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing})
			require.NotContains(t, status.Convert(err).Message(), "12345678")
		})
		t.Run("AlreadyRunning", func(t *testing.T) {
			closing := c.generate(3000, 6)
			first := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
			_, err := c.client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing})
			st := status.Convert(err)
			require.Equal(t, codes.AlreadyExists, st.Code(), st.Message())
			require.Contains(t, st.Message(), "consolidation "+itoa(first.GetConsolidationId()))
			var runs int
			require.NoError(t, c.pool.QueryRow(ctx, "SELECT count(*) FROM consolidation_run WHERE cierre_id = $1", closing).Scan(&runs))
			require.Equal(t, 1, runs)
			c.waitEnd(first.GetConsolidationId(), time.Minute)
		})
	})
}

func TestUnavailableDependencies(t *testing.T) {
	t.Parallel()
	t.Run("Workers", func(t *testing.T) {
		t.Parallel()
		c := newCluster(t, clusterOptions{workers: 0})
		closing := c.generate(10, 1)
		c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.Unavailable, "worker")
	})
	t.Run("Redis", func(t *testing.T) {
		t.Parallel()
		c := newCluster(t, clusterOptions{workers: 1, redisURL: "redis://" + freeAddr(t) + "/0"})
		closing := c.generate(10, 1)
		c.requireRefused(&consolidationv1.ConsolidateRequest{ClosingId: closing}, codes.Unavailable, "redis")
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		c := newCluster(t, clusterOptions{workers: 1, coordEnv: []string{"DATABASE_URL=postgres://postgres@" + freeAddr(t) + "/x?sslmode=disable"}})
		_, err := c.client.Consolidate(context.Background(), &consolidationv1.ConsolidateRequest{ClosingId: 1})
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.Contains(t, status.Convert(err).Message(), "postgresql")
	})
}

// redisHash reads one of a run's hashes straight from Redis.
func (c *cluster) redisHash(runID int64, hash string) map[string]string {
	c.t.Helper()
	return c.redisHashNamed("run:" + itoa(runID) + ":" + hash)
}

// redisHashNamed reads the hash whose key is the coordinator's prefix and name.
func (c *cluster) redisHashNamed(name string) map[string]string {
	c.t.Helper()
	opt, err := redis.ParseURL(c.redis.URL)
	require.NoError(c.t, err)
	client := redis.NewClient(opt)
	defer client.Close()
	m, err := client.HGetAll(context.Background(), c.redis.Prefix+name).Result()
	require.NoError(c.t, err)
	return m
}
