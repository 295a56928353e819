package e2e_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMalformedURLsDoNotPrintTheirPasswords starts the real binaries with
// connection URLs that carry a password and do not parse: each stops with a
// message naming the variable, and the password appears nowhere in what it
// printed.
func TestMalformedURLsDoNotPrintTheirPasswords(t *testing.T) {
	t.Parallel()
	const secret = "s3cretPW"
	for _, tc := range []struct {
		name, binary, names string
		env                 []string
	}{
		{"CoordinatorDatabaseURL", "coordinator", "database URL", []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:notaport/payroll", "REDIS_URL=redis://127.0.0.1:1/0"}},
		// The database is unreachable (a warning, the coordinator goes on), then the
		// Redis URL does not parse.
		{"CoordinatorRedisURL", "coordinator", "REDIS_URL", []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:1/payroll?connect_timeout=1",
			"REDIS_URL=redis://:" + secret + "@127.0.0.1:notaport/0"}},
		{"WorkerDatabaseURL", "worker", "database URL", []string{
			"DATABASE_URL=postgres://app:" + secret + "@127.0.0.1:notaport/payroll"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(filepath.Join(binDir, tc.binary))
			cmd.Env = append(tc.env, "WORKER_TARGET=127.0.0.1:1", "GRPC_ADDR=127.0.0.1:0", "ALLOW_PLAINTEXT=true")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			require.Contains(t, string(out), tc.names)
			require.NotContains(t, string(out), secret)
		})
	}
}

// TestPlaintextIsRefusedByDefault starts the real binaries without TLS files
// and without ALLOW_PLAINTEXT: each refuses to serve, naming both ways out.
func TestPlaintextIsRefusedByDefault(t *testing.T) {
	t.Parallel()
	for _, binary := range []string{"coordinator", "worker"} {
		t.Run(binary, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(filepath.Join(binDir, binary))
			cmd.Env = []string{"DATABASE_URL=postgres://app@127.0.0.1:1/payroll?connect_timeout=1", "REDIS_URL=redis://127.0.0.1:1/0",
				"WORKER_TARGET=127.0.0.1:1", "GRPC_ADDR=127.0.0.1:0"}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			require.Contains(t, string(out), "no TLS")
			require.Contains(t, string(out), "ALLOW_PLAINTEXT=true")
		})
	}
}
