// Package devcluster is devcluster, the development tool: the demo (a whole
// local cluster on throwaway PostgreSQL and Redis), the generator of synthetic
// closings and the throwaway CA. None of it is in a shipped binary or the
// production image (coordinator/deps_test.go checks the shipped binaries'
// imports): a generator pointed at a real DATABASE_URL would write made-up
// closings into it.
package devcluster

import (
	"context"
	"io"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
)

const usage = `devcluster: the payroll consolidation service's development tool (never shipped).

Usage: devcluster COMMAND [flags]     devcluster COMMAND -h lists a command's flags.

Commands:
  demo        [-employees N] [-workers N] [-tls]
              start PostgreSQL, Redis, a coordinator and workers (bin/, next to devcluster);
              generate a closing, consolidate it with a progress bar, print, stop
              (-tls: on mTLS, with a throwaway CA and policy files)
  generate    [-employees N] [-year Y] [-month M] [-seed S] [-database-url URL]
              write a synthetic closing into DATABASE_URL and print its id
  certs       -dir DIR
              write a throwaway CA, certificates and policy files for a local cluster on mTLS
  completion  bash|zsh                 print a shell completion script: source <(devcluster completion bash)
  help        [COMMAND]                this text, or a command's flags
  version     (or -version)            the build's version and VCS revision

Exit codes (as cierrectl's):
  0  done; the demo's run ended datos_consolidados
  1  failed, or the demo's run ended other than datos_consolidados or consolidacion_parcial
  2  usage: an unknown command or flag, or a missing flag
  3  the demo's run ended consolidacion_parcial
`

// Main runs a devcluster command and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.Program{Name: "devcluster", Usage: usage, Commands: map[string]cli.Command{
		"demo": demo, "generate": generate, "certs": certs,
	}}.Main(ctx, args, stdout, stderr)
}
