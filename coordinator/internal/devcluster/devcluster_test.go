package devcluster

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
	"github.com/nominacl/consolidation/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// run is Main with captured output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndHelp(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	tests := []struct {
		args   []string
		code   int
		stdout string // contained; "" means stdout is empty
		stderr string // contained; "" means stderr is empty
	}{
		{args: []string{"help"}, code: cli.ExitOK, stdout: "demo        [-employees N]"},
		{args: nil, code: cli.ExitUsage, stderr: "Commands:"},
		{args: []string{"consolidate"}, code: cli.ExitUsage, stderr: "devcluster: unknown command \"consolidate\""},
		{args: []string{"help", "generate"}, code: cli.ExitOK, stdout: "Usage of generate:\n  -database-url string"},
		{args: []string{"help", "demo"}, code: cli.ExitOK, stdout: "  -tls\n"},
		{args: []string{"help", "completion"}, code: cli.ExitOK, stdout: "completion bash|zsh"},
		{args: []string{"version"}, code: cli.ExitOK, stdout: "devcluster (devel) (revision "},
		{args: []string{"generate", "-bogus"}, code: cli.ExitUsage, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"generate"}, code: cli.ExitUsage, stderr: "devcluster generate: DATABASE_URL is not set"},
		{args: []string{"certs"}, code: cli.ExitUsage, stderr: "devcluster certs: -dir DIR is required"},
		{args: []string{"demo", "extra"}, code: cli.ExitUsage, stderr: "unexpected argument \"extra\""},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(t, tt.args...)
		require.Equal(t, tt.code, code, "%q: stderr %s", tt.args, stderr)
		require.Equal(t, tt.stdout == "", stdout == "", "%q: stdout %q", tt.args, stdout)
		require.Contains(t, stdout, tt.stdout, tt.args)
		require.Equal(t, tt.stderr == "", stderr == "", "%q: stderr %q", tt.args, stderr)
		require.Contains(t, stderr, tt.stderr, tt.args)
	}
}

// TestGenerate: devcluster generate writes a closing with the flags the
// benchmarks' scripts pass (-employees, -seed, -month) and prints its id.
func TestGenerate(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	code, stdout, stderr := run(t, "generate", "-database-url", dbURL, "-employees", "40", "-seed", "11", "-month", "4")
	require.Equal(t, cli.ExitOK, code, stderr)
	m := regexp.MustCompile(`^closing (\d+) generated in \S+: 40 employees, `).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	var mes int
	pool := pgtest.OpenPool(t, dbURL)
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT mes FROM nomina_cierrenomina WHERE id = $1", m[1]).Scan(&mes))
	require.Equal(t, 4, mes)
}

// TestCerts writes the throwaway CA and names each identity's directory.
func TestCerts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, stdout, stderr := run(t, "certs", "-dir", dir)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "for development only")
	for _, d := range []string{"coordinator", "worker", "app", "ops"} {
		require.DirExists(t, filepath.Join(dir, d))
	}
	require.FileExists(t, filepath.Join(dir, "coordinator-policy.yaml"))
	require.FileExists(t, filepath.Join(dir, "worker-policy.yaml"))
}
