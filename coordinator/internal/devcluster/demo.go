package devcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/synth"
)

// demo runs everything on this machine: throwaway PostgreSQL and Redis (unless
// DATABASE_URL / REDIS_URL are set), migrations, a synthetic closing, a coordinator
// and workers, a consolidation with a progress bar, the summary and the metrics
// row; then (with -keep, until Ctrl-C, for the walk-through's commands) it stops
// everything it started.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("demo")
	employees := fs.Int("employees", 20_000, "employees of the generated closing")
	workers := fs.Int("workers", 3, "worker processes")
	onTLS := fs.Bool("tls", false, "run on mTLS, with a throwaway CA and policy files written next to the logs")
	keep := fs.Bool("keep", false, "after the consolidation keep everything up until Ctrl-C, to call it by hand")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Dir(self)
	for _, b := range []string{"coordinator", "worker"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s not found next to devcluster (run make build): %w", b, err)
		}
	}
	logDir, err := os.MkdirTemp("", "consolidation-demo-")
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, "==> "+format+"\n", a...) }

	cfg := launch.StoresConfig{DatabaseURL: os.Getenv("DATABASE_URL"), Database: "consolidation_demo",
		RedisURL: os.Getenv("REDIS_URL")}
	if cfg.DatabaseURL == "" {
		say("starting PostgreSQL (initdb in a temporary directory)")
	}
	if cfg.RedisURL == "" {
		say("starting Redis")
	}
	stores, err := launch.StartStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer stores.Stop()

	say("migrating: coordinator migrate")
	if err := launch.Migrate(ctx, bin, stores.DatabaseURL, filepath.Join(logDir, "migrate.log")); err != nil {
		return err
	}

	say("generating a synthetic closing of %d employees", *employees)
	pool, err := pgxpool.New(ctx, stores.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	start := time.Now()
	gen, err := synth.Generate(ctx, pool, synth.Config{Employees: *employees, Seed: uint64(time.Now().UnixNano())})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "    closing %d: %d employees, %d libro lines, %d novedades, %d movements, %d absences (%s)\n",
		gen.ClosingID, gen.Employees, gen.LibroLines, gen.Novedades, gen.Movements, gen.Absences,
		time.Since(start).Round(time.Millisecond))

	defer fmt.Fprintf(stdout, "==> stopped everything; logs are in %s\n", logDir)
	var devTLS *launch.DevTLS
	if *onTLS {
		if devTLS, err = launch.NewDevTLS(filepath.Join(logDir, "tls")); err != nil {
			return err
		}
		say("mTLS on: a throwaway CA, certificates and policies in %s", devTLS.Dir)
	}
	cluster, err := launch.StartCluster(ctx, launch.ClusterConfig{BinDir: bin, LogDir: logDir,
		DatabaseURL: stores.DatabaseURL, RedisURL: stores.RedisURL, Workers: *workers, TLS: devTLS})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	var targets []string
	for _, w := range cluster.Workers {
		targets = append(targets, w.Addr)
	}
	coordAddr := cluster.Coordinator.Addr
	say("started a coordinator on %s and %d workers on %s", coordAddr, *workers, strings.Join(targets, ", "))

	callArgs := []string{"-addr", coordAddr}
	if devTLS != nil {
		app := devTLS.App
		callArgs = append(callArgs, "-tls-cert", app.Cert, "-tls-key", app.Key, "-tls-ca", app.CA)
		if *keep { // a command for a cluster that stays up
			say("as %s; the same by hand: grpcurl -cacert %s -cert %s -key %s %s list", launch.AppIdentity,
				app.CA, app.Cert, app.Key, coordAddr)
		}
	}
	say("consolidating closing %d", gen.ClosingID)
	err = cli.Consolidate(ctx, append(callArgs, "-closing", strconv.FormatInt(gen.ClosingID, 10)), stdout, stderr)
	if !*keep || ctx.Err() != nil {
		return err
	}
	plain := "-plaintext"
	if devTLS != nil {
		plain = ""
	}
	say("kept up until Ctrl-C: bin/cierrectl status %s -closing %d %s", strings.Join(callArgs, " "), gen.ClosingID, plain)
	<-ctx.Done()
	return err
}
