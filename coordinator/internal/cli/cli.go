// Package cli is cierrectl, the operators' command line: start a consolidation and
// follow it with a live progress bar, show its status, cancel it, generate a
// synthetic closing, and run the whole demo.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/money"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

const usage = `cierrectl: operate the payroll consolidation service.

Commands:
  consolidate -closing N [-policy seed|cost_weighted] [-chunk-size N] [-force] [-retry-failed] [-request-id ID] [-no-watch]
              start a consolidation and follow it with a progress bar until it ends
  watch       -closing N | -run N      follow a run until it ends
  status      -closing N | -run N      show a run's state, totals and metrics
  cancel      -closing N | -run N      cancel a running consolidation
  check       -closing N [-policy P] [-chunk-size N] [-force] [-retry-failed] [-chunks]
              dry run: the refusal a consolidate would get, or the plan of the run it would start
  list        [-closing N] [-estado E] [-since T] [-until T] [-limit N]
              run history, newest first (T: RFC 3339)
  explain     -closing N -rut R        where each figure of an employee's consolidated record comes from
  export      -closing N [-format csv|xlsx] [-o FILE]
              the consolidated rows, one row per concept line (xlsx needs -o)
  generate    -employees N [-year Y -month M -seed S]
              write a synthetic closing into DATABASE_URL and print its id
  demo        [-employees N] [-workers N] [-tls]
              start PostgreSQL, Redis, a coordinator and workers; generate, consolidate, print, stop
              (-tls: on mTLS, with a throwaway CA and policy files)
  health      [-addr host:port]        ask a coordinator's or worker's grpc.health.v1 (HEALTH_ADDR, or the
              gRPC port with -tls-*); exits 1 unless SERVING
  certs       -dir DIR
              write a throwaway CA, certificates and policy files for a local cluster on mTLS

The coordinator is reached at -addr (default $COORDINATOR_ADDR or localhost:50051), on mTLS when
-tls-cert, -tls-key and -tls-ca (default $TLS_CERT_FILE, $TLS_KEY_FILE, $TLS_CA_FILE) are given.
`

// Main runs a command and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"consolidate": consolidate, "watch": watch, "status": statusCmd, "cancel": cancel,
		"generate": generate, "demo": demo, "certs": certs, "health": healthCmd,
		"list": list, "explain": explain, "export": export, "check": check,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cierrectl: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err := cmd(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "cierrectl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// connFlags are -addr and the mTLS files -tls-cert, -tls-key, -tls-ca, each
// defaulting to its environment variable.
type connFlags struct{ addr, cert, key, ca *string }

func addConnFlags(fs *flag.FlagSet) connFlags {
	return connFlags{
		addr: fs.String("addr", cmp.Or(os.Getenv("COORDINATOR_ADDR"), "localhost:50051"), "coordinator address host:port"),
		cert: fs.String("tls-cert", os.Getenv(grpcx.EnvTLSCert), "client certificate (PEM) for mTLS"),
		key:  fs.String("tls-key", os.Getenv(grpcx.EnvTLSKey), "its private key (PEM)"),
		ca:   fs.String("tls-ca", os.Getenv(grpcx.EnvTLSCA), "CA certificate (PEM) the coordinator's certificate is checked against"),
	}
}

// dial connects to the coordinator: on mTLS when the three files are given
// (the coordinator's certificate must name the host of -addr), in plaintext
// when none is.
func (c connFlags) dial() (consolidationv1.ConsolidationServiceClient, func(), error) {
	conn, err := c.conn()
	if err != nil {
		return nil, nil, err
	}
	return consolidationv1.NewConsolidationServiceClient(conn), func() { conn.Close() }, nil
}

func (c connFlags) conn() (*grpc.ClientConn, error) {
	files := grpcx.TLSFiles{Cert: *c.cert, Key: *c.key, CA: *c.ca}
	if err := files.Check(); err != nil {
		return nil, fmt.Errorf("-tls-cert, -tls-key and -tls-ca go together: %w", err)
	}
	conn, err := files.Dial(*c.addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", *c.addr, err)
	}
	return conn, nil
}

// healthCmd asks a server's gRPC health, as a kubelet probe does: grpcurl cannot
// on HEALTH_ADDR, which serves no reflection.
func healthCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	c := addConnFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, err := c.conn()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New("not serving")
	}
	return nil
}

// refFlags are -closing / -run.
type refFlags struct{ closing, run *int64 }

func addRef(fs *flag.FlagSet) refFlags {
	return refFlags{closing: fs.Int64("closing", 0, "closing id (its latest run)"), run: fs.Int64("run", 0, "consolidation (run) id")}
}

func (r refFlags) check() error {
	if (*r.closing > 0) == (*r.run > 0) {
		return errors.New("give exactly one of -closing N or -run N")
	}
	return nil
}

func consolidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consolidate", flag.ContinueOnError)
	conn := addConnFlags(fs)
	closing := fs.Int64("closing", 0, "closing id to consolidate")
	startReq := addStartFlags(fs)
	requestID := fs.String("request-id", "", "idempotency key: the same id for the same closing returns the run it started")
	noWatch := fs.Bool("no-watch", false, "return after starting")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req, err := startReq(*closing)
	if err != nil {
		return err
	}
	req.RequestId = *requestID
	client, closeConn, err := conn.dial()
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.Consolidate(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "consolidation %d of closing %d started: %d employees in %d chunks\n",
		resp.GetConsolidationId(), resp.GetClosingId(), resp.GetTotalEmployees(), resp.GetTotalChunks())
	if *noWatch {
		return nil
	}
	final, err := follow(ctx, client, &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: resp.GetConsolidationId()}}, stderr)
	if err != nil {
		return err
	}
	printSummary(stdout, final)
	return nil
}

// runCommand parses -addr and -closing/-run, dials the coordinator, lets do fetch
// the run, and prints its summary.
func runCommand(ctx context.Context, name string, args []string, stdout io.Writer,
	do func(context.Context, consolidationv1.ConsolidationServiceClient, ref) (*consolidationv1.Consolidation, error)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	conn := addConnFlags(fs)
	flags := addRef(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := flags.check(); err != nil {
		return err
	}
	client, closeConn, err := conn.dial()
	if err != nil {
		return err
	}
	defer closeConn()
	c, err := do(ctx, client, ref{run: *flags.run, closing: *flags.closing})
	if err != nil {
		return err
	}
	printSummary(stdout, c)
	return nil
}

// ref is a run id, or a closing id meaning its latest run.
type ref struct{ run, closing int64 }

func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runCommand(ctx, "watch", args, stdout, func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref) (*consolidationv1.Consolidation, error) {
		req := &consolidationv1.WatchConsolidationRequest{Ref: &consolidationv1.WatchConsolidationRequest_ClosingId{ClosingId: r.closing}}
		if r.run > 0 {
			req.Ref = &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: r.run}
		}
		return follow(ctx, client, req, stderr)
	})
}

// follow draws a progress bar from WatchConsolidation until the run ends; if the
// stream breaks (a coordinator restart) it watches again.
func follow(ctx context.Context, client consolidationv1.ConsolidationServiceClient, req *consolidationv1.WatchConsolidationRequest, stderr io.Writer) (*consolidationv1.Consolidation, error) {
	var bar *progressbar.ProgressBar
	defer func() {
		if bar != nil {
			_ = bar.Finish()
			fmt.Fprintln(stderr)
		}
	}()
	for retries := 0; ; retries++ {
		stream, err := client.WatchConsolidation(ctx, req)
		if err != nil {
			return nil, err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				if ctx.Err() != nil || retries >= 30 {
					return nil, err
				}
				time.Sleep(time.Second)
				break
			}
			p := msg.GetProgress()
			if bar == nil {
				bar = progressbar.NewOptions(max(1, int(p.GetTotalEmployees())),
					progressbar.OptionSetWriter(stderr), progressbar.OptionSetWidth(30), progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(false), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSetItsString("employees"), progressbar.OptionSetRenderBlankState(true))
			}
			_ = bar.Set(int(p.GetEmployeesDone()))
			bar.Describe(fmt.Sprintf("chunks %d/%d %5.1f%% elapsed %s ETA %s", p.GetChunksDone(), p.GetTotalChunks(),
				p.GetPercent(), p.GetElapsed().AsDuration().Round(time.Millisecond), p.GetEta().AsDuration().Round(time.Millisecond)))
			if f := msg.GetFinal(); f != nil {
				return f, nil
			}
		}
	}
}

func statusCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return runCommand(ctx, "status", args, stdout, func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref) (*consolidationv1.Consolidation, error) {
		req := &consolidationv1.GetConsolidationRequest{Ref: &consolidationv1.GetConsolidationRequest_ClosingId{ClosingId: r.closing}}
		if r.run > 0 {
			req.Ref = &consolidationv1.GetConsolidationRequest_ConsolidationId{ConsolidationId: r.run}
		}
		resp, err := client.GetConsolidation(ctx, req)
		return resp.GetConsolidation(), err
	})
}

func cancel(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return runCommand(ctx, "cancel", args, stdout, func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref) (*consolidationv1.Consolidation, error) {
		req := &consolidationv1.CancelConsolidationRequest{Ref: &consolidationv1.CancelConsolidationRequest_ClosingId{ClosingId: r.closing}}
		if r.run > 0 {
			req.Ref = &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: r.run}
		}
		resp, err := client.CancelConsolidation(ctx, req)
		return resp.GetConsolidation(), err
	})
}

func printSummary(w io.Writer, c *consolidationv1.Consolidation) {
	p := c.GetProgress()
	t := c.GetControlTotals()
	fmt.Fprintf(w, "consolidation %d of closing %d: %s\n", c.GetConsolidationId(), c.GetClosingId(), c.GetEstado())
	policy, _ := domainpb.PolicyFromProto(c.GetChunkPolicy())
	if policy == "" {
		policy = "unspecified"
	}
	fmt.Fprintf(w, "  chunks        %d ok, %d failed, %d in all (policy %s, size %d)\n", c.GetChunksSucceeded(),
		c.GetChunksFailed(), c.GetTotalChunks(), policy, c.GetChunkSize())
	fmt.Fprintf(w, "  employees     %d of %d consolidated, %d records, %d novedades without libro\n",
		c.GetEmployeesConsolidated(), c.GetTotalEmployees(), c.GetRecordsCreated(), c.GetUnmatchedNovedades())
	fmt.Fprintf(w, "  elapsed       %s\n", p.GetElapsed().AsDuration().Round(time.Millisecond))
	verified := "not verified"
	if t.GetVerified() {
		verified = "verified against the written rows"
	}
	fmt.Fprintf(w, "  totals        haberes %s, descuentos %s, líquido %s (%s)\n", money.Cents(t.GetTotalHaberesCents()),
		money.Cents(t.GetTotalDescuentosCents()), money.Cents(t.GetLiquidoPagarCents()), verified)
	if c.GetError() != "" {
		fmt.Fprintf(w, "  note          %s\n", c.GetError())
	}
	if c.GetRequestedBy() != "" {
		fmt.Fprintf(w, "  requested by  %s\n", c.GetRequestedBy())
	}
	if c.GetCancelledBy() != "" {
		fmt.Fprintf(w, "  cancelled by  %s\n", c.GetCancelledBy())
	}
	for _, f := range c.GetFailedChunks() {
		fmt.Fprintf(w, "  failed chunk  %d (employees %d..%d, %d attempts): %s\n", f.GetChunkIndex(), f.GetFirstEmployeeId(),
			f.GetLastEmployeeId(), f.GetAttempts(), f.GetError())
	}
	if m := c.GetMetrics(); m != nil {
		fmt.Fprintf(w, "nomina_metrica_consolidacion:\n")
		rows := []struct {
			k string
			v any
		}{
			{"total_empleados", m.GetTotalEmpleados()}, {"chunks_procesados", m.GetChunksProcesados()},
			{"chunks_exitosos", m.GetChunksExitosos()}, {"registros_creados", m.GetRegistrosCreados()},
			{"tiempo_total", fmt.Sprintf("%.3f s", m.GetTiempoTotalSeconds())},
			{"tiempo_promedio_chunk", fmt.Sprintf("%.3f s", m.GetTiempoPromedioChunkSeconds())},
			{"throughput_empleados_sec", fmt.Sprintf("%.1f", m.GetThroughputEmpleadosSec())},
			{"throughput_registros_sec", fmt.Sprintf("%.1f", m.GetThroughputRegistrosSec())},
			{"memoria_pico_mb", fmt.Sprintf("%.1f", m.GetMemoriaPicoMb())},
			{"cpu_promedio_percent", fmt.Sprintf("%.1f", m.GetCpuPromedioPercent())},
			{"chunk_size_utilizado", m.GetChunkSizeUtilizado()}, {"workers_utilizados", m.GetWorkersUtilizados()},
			{"version_algoritmo", m.GetVersionAlgoritmo()},
		}
		for _, r := range rows {
			fmt.Fprintf(w, "  %-26s %v\n", r.k, r.v)
		}
	}
}
