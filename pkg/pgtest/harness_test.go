package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestNewPoolGivesEachTestItsOwnMigratedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	a, b := pgtest.NewPool(t), pgtest.NewPool(t)
	var nameA, nameB string
	require.NoError(t, a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA))
	require.NoError(t, b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB))
	require.NotEqual(t, nameA, nameB)

	_, err := a.Exec(ctx, "INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES (1, 3, 2026, 'x')")
	require.NoError(t, err)
	var n int
	require.NoError(t, b.QueryRow(ctx, "SELECT count(*) FROM nomina_cierrenomina").Scan(&n))
	require.Zero(t, n, "a row written in one test's database is visible in another's")
}

func TestNewRedisGivesDistinctPrefixes(t *testing.T) {
	t.Parallel()
	r1, r2 := pgtest.NewRedis(t), pgtest.NewRedis(t)
	require.NotEqual(t, r1.Prefix, r2.Prefix)
	opt, err := redis.ParseURL(r1.URL)
	require.NoError(t, err)
	client := redis.NewClient(opt)
	defer client.Close()
	require.NoError(t, client.Set(context.Background(), r1.Prefix+"k", "v", 0).Err())
	n, err := client.Exists(context.Background(), r2.Prefix+"k").Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestNewDjangoDatabaseHasDjangosTablesAndTheServices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.OpenPool(t, pgtest.NewDjangoDatabase(t))
	var migrations, ours int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM django_migrations WHERE app = 'nomina'").Scan(&migrations))
	require.Positive(t, migrations)
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&ours))
	require.Positive(t, ours)
	// Django's FKs: deferrable, no ON DELETE in the database.
	var def string
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'nomina_empleado_cierre'::regclass AND contype = 'f'`).Scan(&def))
	require.Contains(t, def, "DEFERRABLE INITIALLY DEFERRED")
	require.NotContains(t, def, "ON DELETE")

	only := pgtest.OpenPool(t, pgtest.NewDatabaseWith(t, pgtest.DjangoOnlySchema))
	var exists bool
	require.NoError(t, only.QueryRow(ctx, "SELECT to_regclass('consolidation_run') IS NOT NULL").Scan(&exists))
	require.False(t, exists, "DjangoOnlySchema has none of the service's tables")
}
