package localdb_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/localdb"
)

func TestPrivateRedisRestartsEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := localdb.StartRedis(ctx)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	opt, err := redis.ParseURL(srv.URL())
	require.NoError(t, err)
	client := redis.NewClient(opt)
	defer client.Close()
	require.NoError(t, client.Set(ctx, "k", "v", 0).Err())
	require.NoError(t, srv.Restart(ctx))
	n, err := client.Exists(ctx, "k").Result()
	require.NoError(t, err)
	require.Zero(t, n)
}
