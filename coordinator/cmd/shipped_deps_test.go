// Package cmd_test checks what the shipped binaries are made of.
package cmd_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/nominacl/consolidation/"

// shipped are the binaries of the production image (deploy/docker/Dockerfile).
var shipped = []string{
	module + "coordinator/cmd/coordinator",
	module + "coordinator/cmd/cierrectl",
	module + "worker/cmd/worker",
}

// devOnly are the packages of the development tools and the tests: throwaway
// servers (localdb runs apt-get), synthetic closings, the dev CA, the local
// cluster, the benchmark, its and the end-to-end tests' read load, and the test
// harnesses.
var devOnly = []string{
	module + "pkg/localdb",
	module + "pkg/synth",
	module + "pkg/devca",
	module + "pkg/pgtest",
	module + "pkg/store/storetest",
	module + "coordinator/internal/engine/ledgertest",
	module + "coordinator/internal/launch",
	module + "coordinator/internal/bench",
	module + "coordinator/internal/readload",
	module + "coordinator/internal/devcluster",
	"testing",
}

// goList runs go list with args in the workspace and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
	}
	require.NoError(t, err)
	return strings.Fields(string(out))
}

// TestShippedBinariesHoldNoDevelopmentCode: the production binaries link none of
// the development tools' or the tests' packages (README, "cierrectl" and
// "devcluster"; docs/architecture.md, "Package map").
func TestShippedBinariesHoldNoDevelopmentCode(t *testing.T) {
	t.Parallel()
	for _, bin := range shipped {
		deps := goList(t, "-deps", bin)
		require.Contains(t, deps, bin)
		for _, dev := range devOnly {
			require.NotContains(t, deps, dev, "%s links %s", bin, dev)
		}
	}
}

// TestFaultInjectionIsTestOnly: the worker's fault injection (it SIGKILLs itself
// on an employee, holds a commit) is compiled only with the faultinject build
// tag, which the end-to-end harness sets; a production build leaves it out.
func TestFaultInjectionIsTestOnly(t *testing.T) {
	t.Parallel()
	const pkg = module + "worker/internal/chunk"
	ignored := goList(t, "-f", `{{join .IgnoredGoFiles " "}}`, pkg)
	require.Contains(t, ignored, "faults.go", "a production build leaves the fault injection out")
	withTag := goList(t, "-tags", "faultinject", "-f", `{{join .GoFiles " "}}`, pkg)
	require.Contains(t, withTag, "faults.go")
	require.NotContains(t, withTag, "faults_off.go")
}
