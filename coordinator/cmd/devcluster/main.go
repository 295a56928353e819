// Command devcluster is the development tool: the demo, the generator of
// synthetic closings and the throwaway CA (package devcluster). It is built by
// make build for this machine and never shipped in the production image.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nominacl/consolidation/coordinator/internal/devcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := devcluster.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
