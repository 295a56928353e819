package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/pgtest"
)

// TestTLSMismatchFailsFast: against a coordinator on mTLS, a call in plaintext,
// a call with another CA's files and one checking a name its certificate does
// not hold (-tls-server-name) each fail at once,
// before any watch is tried, naming the flags that fix them; against one in
// plaintext, a call with TLS files says -plaintext.
func TestTLSMismatchFailsFast(t *testing.T) {
	// Not parallel: it swaps backoff.
	ctx := context.Background()
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	redis := pgtest.NewRedis(t)
	cluster, err := launch.StartCluster(ctx, launch.ClusterConfig{BinDir: binDir, LogDir: t.TempDir(),
		DatabaseURL: pgtest.NewDatabase(t), RedisURL: redis.URL, Workers: 1, DeathSignal: syscall.SIGKILL, TLS: dev,
		CoordinatorEnv: []string{"REDIS_PREFIX=" + redis.Prefix}})
	require.NoError(t, err)
	t.Cleanup(cluster.Kill)
	waits := countBackoff(t)
	addr := cluster.Coordinator.Addr
	ops := []string{"-tls-cert", dev.Ops.Cert, "-tls-key", dev.Ops.Key, "-tls-ca", dev.Ops.CA}

	code, _, stderr := run(t, "watch", "-addr", addr, "-plaintext", "-closing", "1")
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "cannot reach the coordinator at "+addr+": it speaks TLS, and -plaintext does not: "+
		"drop -plaintext and give -tls-cert, -tls-key and -tls-ca")

	// Files of another CA: the coordinator's certificate does not check against it.
	other, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	code, _, stderr = run(t, "watch", "-addr", addr, "-closing", "1", "-tls-cert", other.Ops.Cert, "-tls-key", other.Ops.Key,
		"-tls-ca", other.Ops.CA)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "its certificate does not check against -tls-ca: give the CA that signed it")

	code, _, stderr = run(t, "health", "-addr", addr, "-plaintext")
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "it speaks TLS, and -plaintext does not")
	require.Zero(t, *waits, "no watch was tried again")

	// The right files: the same watch reaches it (and is refused, NotFound).
	code, _, stderr = run(t, append([]string{"watch", "-addr", addr, "-closing", "999999"}, ops...)...)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "cierrectl watch: NotFound: ")

	// -tls-server-name is the name checked instead of -addr's host, as through a
	// port-forward: one the certificate holds reaches it, another is said with the flag.
	code, _, stderr = run(t, append([]string{"watch", "-addr", addr, "-closing", "999999", "-tls-server-name", "localhost"}, ops...)...)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "cierrectl watch: NotFound: ")
	code, _, stderr = run(t, append([]string{"watch", "-addr", addr, "-closing", "999999", "-tls-server-name",
		"coordinator.elsewhere.example"}, ops...)...)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "its certificate does not name -addr's host: pass -tls-server-name")
	require.Contains(t, stderr, "coordinator.elsewhere.example")
	require.Zero(t, *waits, "no watch was tried again")

	// TLS files against a coordinator in plaintext.
	plain, err := launch.StartCluster(ctx, launch.ClusterConfig{BinDir: binDir, LogDir: t.TempDir(),
		DatabaseURL: pgtest.NewDatabase(t), RedisURL: redis.URL, Workers: 1, DeathSignal: syscall.SIGKILL,
		CoordinatorEnv: []string{"REDIS_PREFIX=" + redis.Prefix + "plain:"}})
	require.NoError(t, err)
	t.Cleanup(plain.Kill)
	code, _, stderr = run(t, append([]string{"status", "-addr", plain.Coordinator.Addr, "-closing", "1"}, ops...)...)
	require.Equal(t, ExitFailed, code, stderr)
	require.Contains(t, stderr, "it does not speak TLS (a development coordinator, ALLOW_PLAINTEXT=true): pass -plaintext instead of -tls-*")
}

// TestCoordinatorRefusesAnUnmigratedDatabase: a coordinator started on the
// application's tables alone (none of the service's migrations) exits saying the
// command to run, not a missing table's SQLSTATE or a list of columns.
func TestCoordinatorRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	redis := pgtest.NewRedis(t)
	grpcAddr, err := launch.FreeAddr()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "coordinator"))
	cmd.Env = append(os.Environ(), "DATABASE_URL="+pgtest.NewDatabaseWith(t, pgtest.DjangoOnlySchema), "REDIS_URL="+redis.URL,
		"REDIS_PREFIX="+redis.Prefix, "ALLOW_PLAINTEXT=true", "GRPC_ADDR="+grpcAddr, "WORKER_TARGET=127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Positive(t, cmd.ProcessState.ExitCode(), "%s", out)
	require.Contains(t, string(out), "the database is not migrated (none of the ")
	require.Contains(t, string(out), "run `coordinator migrate` with this DATABASE_URL first")
	require.NotContains(t, string(out), "42P01")
	require.Less(t, strings.Count(string(out), "\n"), 5, "%s", out)
}
