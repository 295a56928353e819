// Command cierrectl operates the consolidation service: consolidate with a live
// progress bar, watch, status, cancel, check, list, explain and export. The
// demo, the generator and the dev CA are devcluster's (coordinator/cmd/devcluster).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
