package storetls_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/devca"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/redact"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/storetls"
)

// caFile writes a new CA's certificate into a file of the test's own.
func caFile(t *testing.T, name string) (*devca.CA, string) {
	t.Helper()
	ca, path, err := devca.NewCAFile(name, t.TempDir())
	require.NoError(t, err)
	return ca, path
}

func TestCheckDatabaseURL(t *testing.T) {
	t.Parallel()
	_, ca := caFile(t, "check")
	const plain, unverified = "without TLS", "does not verify both the server's certificate and its host name"
	tests := []struct {
		url  string
		want string // "" accepted; else in the error
	}{
		{"postgres://svc:s3cret@db:5432/payroll", plain}, // pgx's default is prefer
		{"postgres://svc:s3cret@db/payroll?sslmode=disable", plain},
		{"postgres://svc:s3cret@db/payroll?sslmode=allow", plain},
		{"postgres://svc:s3cret@db/payroll?sslmode=prefer", plain},
		{"postgres://svc:s3cret@db/payroll?sslmode=require", unverified},
		{"postgres://svc:s3cret@db/payroll?sslmode=verify-ca&sslrootcert=" + ca, unverified},
		{"postgres://svc:s3cret@db/payroll?sslmode=require&sslrootcert=" + ca, unverified}, // libpq: verify-ca
		{"host=db user=svc password=s3cret sslmode=require", unverified},
		{"postgres://svc:s3cret@db1,db2/payroll?sslmode=verify-full&sslrootcert=" + ca, ""},
		{"postgres://svc:s3cret@db/payroll?sslmode=verify-full&sslrootcert=" + ca, ""},
		{"host=db user=svc password=s3cret sslmode=verify-full sslrootcert=" + ca, ""},
		{"postgres://svc:s3cret@db/payroll?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt", "unable to read CA file"},
	}
	required := storetls.Settings{RequireVerified: true}
	for _, tt := range tests {
		require.NoError(t, storetls.Settings{}.CheckDatabaseURL(tt.url), "not required: %s", tt.url)
		err := required.CheckDatabaseURL(tt.url)
		if tt.want == "" {
			require.NoError(t, err, tt.url)
			continue
		}
		require.ErrorContains(t, err, tt.want, tt.url)
		require.NotContains(t, err.Error(), "s3cret")
		if tt.want != "unable to read CA file" {
			require.ErrorContains(t, err, storetls.EnvRequireVerified, tt.url)
		}
	}
}

// redisOptions makes a client's options from url as the coordinator does
// (coordinator/cmd/coordinator: redis.ParseURL, then Settings.RedisTLS).
func redisOptions(s storetls.Settings, url string) (*redis.Options, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, redact.Err(err)
	}
	return opts, s.RedisTLS(opts.TLSConfig)
}

func TestRedisTLS(t *testing.T) {
	t.Parallel()
	_, ca := caFile(t, "redis")
	notPEM := filepath.Join(t.TempDir(), "empty.crt")
	require.NoError(t, os.WriteFile(notPEM, []byte("nothing"), 0o600))
	tests := []struct {
		name     string
		settings storetls.Settings
		url      string
		want     string // "" accepted; else in the error
	}{
		{"PlaintextAllowedByDefault", storetls.Settings{}, "redis://:s3cret@redis:6379/0", ""},
		{"PlaintextRefusedWhenRequired", storetls.Settings{RequireVerified: true}, "redis://:s3cret@redis:6379/0", "not rediss://"},
		{"UnixSocketRefusedWhenRequired", storetls.Settings{RequireVerified: true}, "unix://:s3cret@/run/redis.sock", "not rediss://"},
		{"SkipVerifyRefusedWhenRequired", storetls.Settings{RequireVerified: true, RedisCAFile: ca},
			"rediss://:s3cret@redis:6379/0?skip_verify=true", "skip_verify"},
		{"SystemRootsAccepted", storetls.Settings{RequireVerified: true}, "rediss://:s3cret@redis:6379/0", ""},
		{"CAAccepted", storetls.Settings{RequireVerified: true, RedisCAFile: ca}, "rediss://:s3cret@redis:6379/0", ""},
		{"CAWithPlaintextRefused", storetls.Settings{RedisCAFile: ca}, "redis://:s3cret@redis:6379/0", storetls.EnvRedisCA + " is set"},
		{"MissingCAFile", storetls.Settings{RedisCAFile: "/nonexistent/ca.crt"}, "rediss://:s3cret@redis:6379/0", storetls.EnvRedisCA},
		{"CAFileWithoutPEM", storetls.Settings{RedisCAFile: notPEM}, "rediss://:s3cret@redis:6379/0", "no PEM certificate"},
		{"BadURL", storetls.Settings{}, "rediss://:s3cret@redis:6379/0?bogus=1", "unexpected option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts, err := redisOptions(tt.settings, tt.url)
			if tt.want == "" {
				require.NoError(t, err)
				require.Equal(t, "s3cret", opts.Password)
				if tt.settings.RedisCAFile != "" {
					require.NotNil(t, opts.TLSConfig.RootCAs)
				}
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "s3cret")
			if tt.settings.RequireVerified {
				require.ErrorContains(t, err, storetls.EnvRequireVerified)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{storetls.EnvRequireVerified: "true", storetls.EnvRedisCA: "/ca.crt"}
	s, err := storetls.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, storetls.Settings{RequireVerified: true, RedisCAFile: "/ca.crt"}, s)
	s, err = storetls.FromEnv(func(string) string { return "" })
	require.NoError(t, err)
	require.False(t, s.RequireVerified)
	_, err = storetls.FromEnv(func(k string) string { return map[string]string{storetls.EnvRequireVerified: "yes please"}[k] })
	require.ErrorContains(t, err, storetls.EnvRequireVerified)
}

// TestHarnessServersOnTLS connects to the harness's own PostgreSQL and Redis on
// TLS the way the services do: the URL checked, the pool opened by
// store.OpenPool, the Redis client made from RedisOptions.
func TestHarnessServersOnTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca, caPath := caFile(t, "stores")
	_, wrongCA := caFile(t, "someone else")
	required := storetls.Settings{RequireVerified: true}

	pg, err := localdb.StartPostgresTLS(ctx, ca)
	require.NoError(t, err)
	t.Cleanup(pg.Stop)
	rds, err := localdb.StartRedisTLS(ctx, ca)
	require.NoError(t, err)
	t.Cleanup(rds.Stop)

	t.Run("PostgresVerifyFullWithTheCA", func(t *testing.T) {
		t.Parallel()
		url := pg.VerifyFullURL("postgres", caPath)
		require.NoError(t, required.CheckDatabaseURL(url))
		pool, err := store.OpenPool(ctx, url, store.PoolerNone, "storetls-test", 0, 2)
		require.NoError(t, err)
		defer pool.Close()
		var ssl bool
		var version string
		require.NoError(t, pool.QueryRow(ctx, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &version))
		require.True(t, ssl)
		require.NotEmpty(t, version)
	})
	t.Run("PostgresWrongCAFails", func(t *testing.T) {
		t.Parallel()
		url := pg.VerifyFullURL("postgres", wrongCA)
		require.NoError(t, required.CheckDatabaseURL(url)) // well-formed; the handshake refuses it
		pool, err := store.OpenPool(ctx, url, store.PoolerNone, "storetls-test", 0, 2)
		require.NoError(t, err)
		defer pool.Close()
		require.ErrorContains(t, pool.Ping(ctx), "certificate signed by unknown authority")
	})
	t.Run("RedisWithTheCA", func(t *testing.T) {
		t.Parallel()
		opts, err := redisOptions(storetls.Settings{RequireVerified: true, RedisCAFile: caPath}, rds.URL())
		require.NoError(t, err)
		client := redis.NewClient(opts)
		defer client.Close()
		require.NoError(t, client.Set(ctx, "storetls", "ok", 0).Err())
		require.Equal(t, "ok", client.Get(ctx, "storetls").Val())
	})
	t.Run("RedisWrongCAFails", func(t *testing.T) {
		t.Parallel()
		opts, err := redisOptions(storetls.Settings{RequireVerified: true, RedisCAFile: wrongCA}, rds.URL())
		require.NoError(t, err)
		opts.MaxRetries = -1
		client := redis.NewClient(opts)
		defer client.Close()
		require.ErrorContains(t, client.Ping(ctx).Err(), "certificate signed by unknown authority")
	})
	t.Run("RedisPlaintextToTheTLSPortFails", func(t *testing.T) {
		t.Parallel()
		opts, err := redisOptions(storetls.Settings{}, "redis://"+rds.Addr()+"/0")
		require.NoError(t, err)
		opts.MaxRetries = -1
		client := redis.NewClient(opts)
		defer client.Close()
		require.Error(t, client.Ping(ctx).Err())
	})
}
