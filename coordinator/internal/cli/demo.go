package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/synth"
)

// demo runs everything on this machine: throwaway PostgreSQL and Redis (unless
// DATABASE_URL / REDIS_URL are set), migrations, a synthetic closing, a coordinator
// and workers, a consolidation with a progress bar, the summary and the metrics
// row; then it stops everything it started.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	employees := fs.Int("employees", 20_000, "employees of the generated closing")
	workers := fs.Int("workers", 3, "worker processes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Dir(self)
	for _, b := range []string{"coordinator", "worker"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s not found next to cierrectl (run make build): %w", b, err)
		}
	}
	logDir, err := os.MkdirTemp("", "consolidation-demo-")
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, "==> "+format+"\n", a...) }

	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		say("starting PostgreSQL (initdb in a temporary directory)")
		pg, err := localdb.StartPostgres(ctx)
		if err != nil {
			return err
		}
		defer pg.Stop()
		admin, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err != nil {
			return err
		}
		_, err = admin.Exec(ctx, "CREATE DATABASE consolidation_demo")
		admin.Close(ctx)
		if err != nil {
			return err
		}
		dbURL = pg.URL("consolidation_demo")
	}
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		say("starting Redis")
		rs, err := localdb.StartRedis(ctx)
		if err != nil {
			return err
		}
		defer rs.Stop()
		redisURL = rs.URL()
	}

	say("migrating: coordinator migrate")
	if err := runQuiet(ctx, filepath.Join(bin, "coordinator"), []string{"migrate"}, []string{"DATABASE_URL=" + dbURL},
		filepath.Join(logDir, "migrate.log")); err != nil {
		return err
	}

	say("generating a synthetic closing of %d employees", *employees)
	pool, err := pgxpool.New(ctx, dbURL)
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

	var procs []*launch.Process
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
		fmt.Fprintf(stdout, "==> stopped everything; logs are in %s\n", logDir)
	}()
	var targets []string
	for i := range *workers {
		name := "worker-" + strconv.Itoa(i+1)
		p, err := launch.Start(filepath.Join(bin, "worker"), name, filepath.Join(logDir, name+".log"),
			"DATABASE_URL="+dbURL, "WORKER_NAME="+name)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		targets = append(targets, p.Addr)
	}
	coord, err := launch.Start(filepath.Join(bin, "coordinator"), "coordinator", filepath.Join(logDir, "coordinator.log"),
		"DATABASE_URL="+dbURL, "REDIS_URL="+redisURL, "WORKER_TARGET="+strings.Join(targets, ","))
	if err != nil {
		return err
	}
	procs = append(procs, coord)
	coordAddr := coord.Addr
	say("started a coordinator on %s and %d workers on %s", coordAddr, *workers, strings.Join(targets, ", "))
	for _, p := range procs {
		if err := launch.WaitServing(ctx, p.Addr); err != nil {
			return fmt.Errorf("%s: %w (see the logs in %s)", p.Name, err, logDir)
		}
	}

	say("consolidating closing %d", gen.ClosingID)
	return consolidate(ctx, []string{"-addr", coordAddr, "-closing", strconv.FormatInt(gen.ClosingID, 10)}, stdout, stderr)
}

func runQuiet(ctx context.Context, path string, args, env []string, logPath string) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
	return nil
}
