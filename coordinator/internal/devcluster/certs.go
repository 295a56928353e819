package devcluster

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/devca"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

// certs writes a throwaway CA, the certificates of a coordinator, workers, the
// payroll application and an operator, and the two policy files, for running the
// services on mTLS by hand (README, "Security").
func certs(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := cli.NewFlagSet("certs")
	dir := fs.String("dir", "", "directory to write into (created)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return cli.UsageErrorf("-dir DIR is required")
	}
	d, err := launch.NewDevTLS(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA, certificates and policies written to %s (valid %s; for development only)\n", d.Dir, devca.Validity)
	for _, f := range []struct {
		who, identity, policy string
		files                 grpcx.TLSFiles
	}{
		{"coordinator", launch.CoordinatorIdentity, d.CoordinatorPolicy, d.Coordinator},
		{"worker", launch.WorkerIdentity, d.WorkerPolicy, d.Worker},
		{"app", launch.AppIdentity, "", d.App},
		{"ops", launch.OpsIdentity, "", d.Ops},
	} {
		fmt.Fprintf(stdout, "  %-12s %s: %s\n", f.who, f.identity, filepath.Dir(f.files.Cert))
		if f.policy != "" {
			fmt.Fprintf(stdout, "  %-12s %s\n", "", strings.Join(launch.Env(f.files, f.policy), " "))
		}
	}
	return nil
}
