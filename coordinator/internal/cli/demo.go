package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/pkg/pgtest"
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
		pg, err := pgtest.StartPostgres(ctx)
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
		rs, err := pgtest.StartRedis(ctx)
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

	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
		fmt.Fprintf(stdout, "==> stopped everything; logs are in %s\n", logDir)
	}()
	var targets []string
	for i := range *workers {
		port, err := freePort()
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := startProc(filepath.Join(bin, "worker"), []string{"DATABASE_URL=" + dbURL, "GRPC_ADDR=" + addr,
			"WORKER_NAME=worker-" + strconv.Itoa(i+1)}, filepath.Join(logDir, fmt.Sprintf("worker-%d.log", i+1)))
		if err != nil {
			return err
		}
		procs = append(procs, p)
		targets = append(targets, addr)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	coordAddr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(filepath.Join(bin, "coordinator"), []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL,
		"GRPC_ADDR=" + coordAddr, "WORKER_TARGET=" + strings.Join(targets, ",")}, filepath.Join(logDir, "coordinator.log"))
	if err != nil {
		return err
	}
	procs = append(procs, p)
	say("started a coordinator on %s and %d workers on %s", coordAddr, *workers, strings.Join(targets, ", "))
	for _, a := range append([]string{coordAddr}, targets...) {
		if err := waitServing(ctx, a); err != nil {
			return fmt.Errorf("%s: %w (see the logs in %s)", a, err, logDir)
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

func startProc(path string, env []string, logPath string) (*exec.Cmd, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	return cmd, nil
}

func waitServing(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not serving after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
