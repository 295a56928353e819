package e2e_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/schema"
)

// TestGrantsPrintsTheRuntimeGrants runs `coordinator grants -role NAME` as a DBA
// would (no environment): it prints exactly runtime_grants.sql for that role,
// the block README shows (pkg/schema's drift test), and without -role it stops
// saying so.
func TestGrantsPrintsTheRuntimeGrants(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(binDir, "coordinator")
	cmd := exec.Command(bin, "grants", "-role", "payroll_runtime")
	cmd.Env = []string{}
	out, err := cmd.Output()
	require.NoError(t, err)
	require.Equal(t, schema.RuntimeGrants("payroll_runtime"), string(out))
	require.Contains(t, string(out), `TO "payroll_runtime"`)

	cmd = exec.Command(bin, "grants")
	cmd.Env = []string{}
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Contains(t, string(out), "-role NAME is required")
}
