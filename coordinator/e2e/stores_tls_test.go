package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/devca"
	"github.com/nominacl/consolidation/pkg/localdb"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// writeCA makes a throwaway CA and writes its certificate into a file of the
// test's own.
func writeCA(t *testing.T, name string) (*devca.CA, string) {
	t.Helper()
	ca, path, err := devca.NewCAFile(name, t.TempDir())
	require.NoError(t, err)
	return ca, path
}

// runBinary runs a service binary of this test with env only and returns what
// it printed and its error (nil: exit status 0).
func runBinary(t *testing.T, binary string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, binary), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestStoresOverVerifiedTLS runs the real binaries against the harness's
// PostgreSQL and Redis on TLS, with REQUIRE_VERIFIED_DB_TLS=true
// (docs/security-model.md, "Transport to the stores"): `coordinator migrate`
// and a whole run work over sslmode=verify-full and rediss:// with the CA,
// every session of the services is encrypted, and a URL whose CA did not sign
// the server's certificate fails naming the reason.
func TestStoresOverVerifiedTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca, caFile := writeCA(t, "stores")
	_, wrongCA := writeCA(t, "not the stores'")
	pg, err := localdb.StartPostgresTLS(ctx, ca)
	require.NoError(t, err)
	t.Cleanup(pg.Stop)
	rds, err := localdb.StartRedisTLS(ctx, ca)
	require.NoError(t, err)
	t.Cleanup(rds.Stop)
	admin, err := pgx.Connect(ctx, pg.VerifyFullURL("postgres", caFile))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE e2e")
	require.NoError(t, admin.Close(ctx))
	require.NoError(t, err)
	dbURL := pg.VerifyFullURL("e2e", caFile)
	const require_ = "REQUIRE_VERIFIED_DB_TLS=true"

	t.Run("WrongCAFailsNamingTheCertificate", func(t *testing.T) {
		out, err := runBinary(t, "coordinator", []string{"DATABASE_URL=" + pg.VerifyFullURL("e2e", wrongCA), require_}, "migrate")
		require.Error(t, err, out)
		require.Contains(t, out, "certificate signed by unknown authority")
	})
	t.Run("MigrateOverVerifyFull", func(t *testing.T) {
		out, err := runBinary(t, "coordinator", []string{"DATABASE_URL=" + dbURL, require_}, "migrate")
		require.NoError(t, err, out)
		require.Contains(t, out, "schema up to date")
	})
	t.Run("ConsolidatesOverVerifyFullAndRediss", func(t *testing.T) {
		c := newCluster(t, clusterOptions{databaseURL: dbURL, redisURL: rds.URL(), workers: 2,
			coordEnv: []string{require_, "REDIS_TLS_CA_FILE=" + caFile}, workerEnv: []string{require_}})
		closing := c.generate(200, 41)
		want := expected(t, c.pool, closing)
		resp := c.consolidate(&consolidationv1.ConsolidateRequest{ClosingId: closing})
		done := c.waitEnd(resp.GetConsolidationId(), time.Minute)
		require.Equal(t, consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED, done.GetStatus(), done.GetError())
		requireResultsEqual(t, c.pool, closing, want)

		// Every session the services hold is on TLS, the workers' and the
		// coordinator's.
		rows, err := c.pool.Query(ctx, `SELECT a.application_name, s.ssl FROM pg_stat_activity a
			JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'consolidation-%'`)
		require.NoError(t, err)
		sessions, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			App string
			SSL bool
		}])
		require.NoError(t, err)
		apps := map[string]bool{}
		for _, s := range sessions {
			require.True(t, s.SSL, "a session of %s without TLS", s.App)
			apps[s.App] = true
		}
		require.True(t, apps["consolidation-coordinator"], "no coordinator session among %v", sessions)
		require.True(t, apps["consolidation-worker"], "no worker session among %v", sessions)

		// The coordinator wrote the run's progress into the Redis that serves
		// TLS only.
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		opts, err := redis.ParseURL(rds.URL())
		require.NoError(t, err)
		opts.TLSConfig = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		client := redis.NewClient(opts)
		defer client.Close()
		keys, err := client.Keys(ctx, c.redis.Prefix+"*").Result()
		require.NoError(t, err)
		require.NotEmpty(t, keys)
	})
}

// TestUnverifiedStoreTLSIsRefused starts the real binaries with
// REQUIRE_VERIFIED_DB_TLS=true and store URLs short of verified TLS: each
// refuses to start, naming the setting and the variable, and prints no
// password.
func TestUnverifiedStoreTLSIsRefused(t *testing.T) {
	t.Parallel()
	const secret = "s3cretPW"
	_, caFile := writeCA(t, "refusals")
	verified := "DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll?sslmode=verify-full&sslrootcert=" + caFile
	for _, tc := range []struct {
		name, binary, names string
		args, env           []string
	}{
		{"CoordinatorPrefer", "coordinator", "DATABASE_URL", nil, []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll?sslmode=prefer", "REDIS_URL=rediss://127.0.0.1:1/0"}},
		{"CoordinatorDefaultSSLMode", "coordinator", "DATABASE_URL", nil, []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll", "REDIS_URL=rediss://127.0.0.1:1/0"}},
		{"CoordinatorRequire", "coordinator", "DATABASE_URL", nil, []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll?sslmode=require", "REDIS_URL=rediss://127.0.0.1:1/0"}},
		{"CoordinatorPlaintextRedis", "coordinator", "REDIS_URL", nil, []string{
			verified, "REDIS_URL=redis://:" + secret + "@127.0.0.1:1/0"}},
		{"CoordinatorRedisSkipVerify", "coordinator", "REDIS_URL", nil, []string{
			verified, "REDIS_URL=rediss://:" + secret + "@127.0.0.1:1/0?skip_verify=true"}},
		{"MigrateRequire", "coordinator", "DATABASE_URL", []string{"migrate"}, []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll?sslmode=require"}},
		{"WorkerPrefer", "worker", "DATABASE_URL", nil, []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll?sslmode=prefer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := runBinary(t, tc.binary, append(tc.env, "REQUIRE_VERIFIED_DB_TLS=true", "WORKER_TARGET=127.0.0.1:1",
				"GRPC_ADDR=127.0.0.1:0", "ALLOW_PLAINTEXT=true"), tc.args...)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			require.Contains(t, out, "REQUIRE_VERIFIED_DB_TLS=true")
			require.Contains(t, out, tc.names+": ")
			require.NotContains(t, out, secret)
		})
	}
}
