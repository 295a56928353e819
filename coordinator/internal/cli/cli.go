// Package cli is cierrectl, the operators' command line: start a consolidation and
// follow it with a live progress bar, show its status, cancel it, explain and
// export its rows. Its Program (help, version, completion, flags, exit codes) is
// shared with the development tool devcluster, which holds what is never shipped:
// the demo, the generator of synthetic closings and the throwaway CA.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/money"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

const usage = `cierrectl: operate the payroll consolidation service.

Usage: cierrectl COMMAND [flags]     cierrectl COMMAND -h lists a command's flags.

Commands:
  consolidate -closing N [-policy seed|cost_weighted] [-chunk-size N] [-force [-yes]] [-retry-failed] [-request-id ID] [-no-watch] [-json]
              start a consolidation and follow it with a progress bar until it ends
              (-force asks for confirmation on a terminal; scripts pass -yes)
  watch       -closing N | -run N [-json]          follow a run until it ends
  status      -closing N | -run N [-json]          show a run's state, totals and metrics
  cancel      -closing N | -run N [-yes] [-json]   cancel a running consolidation (asks first unless -yes)
  check       -closing N [-policy P] [-chunk-size N] [-force] [-retry-failed] [-chunks]
              dry run: the refusal a consolidate would get, or the plan of the run it would start
  list        [-closing N] [-estado E] [-since T] [-until T] [-limit N]
              run history, newest first (T: RFC 3339)
  explain     -closing N -rut R        where each figure of an employee's consolidated record comes from
  export      -closing N [-format csv|xlsx] [-o FILE]
              the consolidated rows, one row per concept line (xlsx needs -o)
  health      [-addr host:port]        ask a coordinator's or worker's grpc.health.v1 (HEALTH_ADDR, or the
              gRPC port with -tls-*); exits 1 unless SERVING
  completion  bash|zsh                 print a shell completion script: source <(cierrectl completion bash)
  help        [COMMAND]                this text, or a command's flags
  version     (or -version)            the build's version and VCS revision

-json prints each response as protojson (proto field names), one JSON document a line; watch and
consolidate print every progress message, the last one holding "final".

Exit codes:
  0  done; a followed run (consolidate, watch) ended datos_consolidados
  1  failed: the coordinator refused or could not be reached, or a followed run ended
     error_consolidacion, consolidacion_cancelada, timeout_consolidacion or error_recursos
  2  usage: an unknown command or flag, a missing flag, or a confirmation not given (-yes)
  3  a followed run ended consolidacion_parcial: retry its failed employees with -retry-failed

The coordinator is reached at -addr (default $COORDINATOR_ADDR or localhost:50051), on mTLS when
-tls-cert, -tls-key and -tls-ca (default $TLS_CERT_FILE, $TLS_KEY_FILE, $TLS_CA_FILE) are given.
`

// Main runs a cierrectl command and returns the process exit code (ExitOK,
// ExitFailed, ExitUsage, ExitPartial).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cierrectl().Main(ctx, args, stdout, stderr)
}

func cierrectl() Program {
	return Program{Name: "cierrectl", Usage: usage, Commands: map[string]Command{
		"consolidate": consolidate, "watch": watch, "status": statusCmd, "cancel": cancel, "health": healthCmd,
		"list": list, "explain": explain, "export": export, "check": check,
	}}
}

// connFlags are -addr and the mTLS files -tls-cert, -tls-key, -tls-ca, each
// defaulting to its environment variable; -tls-server-name, the name checked in
// the coordinator's certificate when it is not -addr's host (a port-forward to
// localhost); -plaintext, the only way to call without TLS.
type connFlags struct {
	addr, cert, key, ca, serverName *string
	plaintext                       *bool
}

// callFlags are the flags of a command that calls the coordinator and prints
// its answers: the connection's (connFlags) and -json (output). The command adds
// its own to the FlagSet.
type callFlags struct {
	*flag.FlagSet
	conn connFlags
	out  output
}

func newCallFlags(name string) callFlags {
	fs := newFlagSet(name)
	return callFlags{FlagSet: fs, conn: addConnFlags(fs), out: addOutput(fs)}
}

// parse parses the command's arguments (parseFlags).
func (f callFlags) parse(args []string) error { return parseFlags(f.FlagSet, args) }

func addConnFlags(fs *flag.FlagSet) connFlags {
	return connFlags{
		addr: fs.String("addr", cmp.Or(os.Getenv("COORDINATOR_ADDR"), "localhost:50051"), "coordinator address host:port"),
		cert: fs.String("tls-cert", os.Getenv(grpcx.EnvTLSCert), "client certificate (PEM) for mTLS"),
		key:  fs.String("tls-key", os.Getenv(grpcx.EnvTLSKey), "its private key (PEM)"),
		ca:   fs.String("tls-ca", os.Getenv(grpcx.EnvTLSCA), "CA certificate (PEM) the coordinator's certificate is checked against"),
		serverName: fs.String("tls-server-name", "",
			"name to check in the coordinator's certificate instead of -addr's host (e.g. coordinator.payroll-consolidation.svc through a port-forward)"),
		plaintext: fs.Bool("plaintext", false, "call without TLS (development only; refused otherwise when no -tls-* file is given)"),
	}
}

// dial connects to the coordinator: on mTLS when the three files are given
// (the coordinator's certificate must name the host of -addr, or
// -tls-server-name), in plaintext only with -plaintext.
// Before the command's call it asks the coordinator's gRPC health, failing fast
// (reach): a coordinator that cannot be reached, or that speaks TLS when called
// in plaintext (or the reverse), is said at once with the flags that fix it,
// rather than after watch's retries.
func (c connFlags) dial(ctx context.Context) (consolidationv1.ConsolidationServiceClient, func(), error) {
	conn, err := c.conn()
	if err != nil {
		return nil, nil, err
	}
	if err := c.reach(ctx, conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return consolidationv1.NewConsolidationServiceClient(conn), func() { conn.Close() }, nil
}

// reachTimeout bounds reach's health call: a coordinator that does not answer
// by then (a port that drops packets) is reported as unreachable.
const reachTimeout = 10 * time.Second

// reach asks conn's grpc.health.v1 once, without waiting for a connection
// (gRPC's fail-fast): the first connection attempt's failure comes back at
// once as Unavailable, and is said in the user's terms (unreachable). Any
// answer of the server's, even a refusal, means it was reached.
func (c connFlags) reach(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
		return c.unreachable(err)
	}
	return nil
}

// unreachable says why the coordinator at -addr could not be reached, and
// which flags fix it, from the connection's error.
func (c connFlags) unreachable(err error) error {
	msg := status.Convert(err).Message()
	addr := *c.addr
	var hint string
	switch {
	case status.Code(err) == codes.DeadlineExceeded:
		hint = "no answer in time: check -addr (or COORDINATOR_ADDR) and that the coordinator is up"
	case strings.Contains(msg, "server preface") && *c.plaintext:
		hint = "it speaks TLS, and -plaintext does not: drop -plaintext and give -tls-cert, -tls-key and -tls-ca " +
			"(or TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		hint = "it does not speak TLS (a development coordinator, ALLOW_PLAINTEXT=true): pass -plaintext instead of -tls-*"
	case strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "certificate is not valid for any names"):
		hint = "its certificate does not name -addr's host: pass -tls-server-name with a name it holds " +
			"(e.g. coordinator.payroll-consolidation.svc through a port-forward)"
	case strings.Contains(msg, "remote error"):
		hint = "it refused our certificate: -tls-cert and -tls-key must be a client certificate signed by the CA it trusts"
	case strings.Contains(msg, "x509:"):
		hint = "its certificate does not check against -tls-ca: give the CA that signed it"
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host"):
		hint = "nothing answers there: check -addr (or COORDINATOR_ADDR) and that the coordinator is up"
	default:
		hint = "check -addr, -plaintext or -tls-cert/-tls-key/-tls-ca, and -tls-server-name"
	}
	return fmt.Errorf("cannot reach the coordinator at %s: %s (%s)", addr, hint, msg)
}

func (c connFlags) conn() (*grpc.ClientConn, error) {
	files := grpcx.TLSFiles{Cert: *c.cert, Key: *c.key, CA: *c.ca}
	if err := files.Check(); err != nil {
		return nil, usageErrorf("-tls-cert, -tls-key and -tls-ca go together: %w", err)
	}
	switch {
	case files.Enabled() && *c.plaintext:
		return nil, errors.New("-plaintext and -tls-* files exclude each other")
	case !files.Enabled() && !*c.plaintext:
		return nil, errors.New("no TLS: give -tls-cert, -tls-key and -tls-ca (or TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE), or -plaintext for a development coordinator")
	}
	var opts []grpcx.DialOption
	if *c.serverName != "" {
		opts = append(opts, grpcx.WithTLSServerName(*c.serverName))
	}
	conn, err := files.Dial(*c.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", *c.addr, err)
	}
	return conn, nil
}

// healthCmd asks a server's gRPC health, as a kubelet probe does: grpcurl cannot
// on HEALTH_ADDR, which serves no reflection.
func healthCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newCallFlags("health")
	if err := fs.parse(args); err != nil {
		return err
	}
	conn, err := fs.conn.conn()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
		return fs.conn.unreachable(err)
	} else if err != nil {
		return err
	}
	if err := fs.out.print(stdout, resp, func(w io.Writer) { fmt.Fprintln(w, resp.GetStatus()) }); err != nil {
		return err
	}
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
		return usageErrorf("give exactly one of -closing N or -run N")
	}
	return nil
}

// Consolidate is cierrectl's consolidate command (devcluster's demo ends with it).
func Consolidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return consolidate(ctx, args, stdout, stderr)
}

func consolidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCallFlags("consolidate")
	closing := fs.Int64("closing", 0, "closing id to consolidate")
	startReq := addStartFlags(fs.FlagSet)
	requestID := fs.String("request-id", "", "idempotency key: the same id for the same closing returns the run it started")
	noWatch := fs.Bool("no-watch", false, "return after starting")
	yes := fs.Bool("yes", false, "with -force: do not ask for confirmation (a script must say it)")
	if err := fs.parse(args); err != nil {
		return err
	}
	req, err := startReq(*closing)
	if err != nil {
		return usageErrorf("%v", err)
	}
	req.RequestId = *requestID
	if req.GetForce() {
		q := fmt.Sprintf("-force consolidates closing %d again and replaces its consolidated rows. Go on?", *closing)
		if err := confirm(*yes, stderr, q); err != nil {
			return err
		}
	}
	client, closeConn, err := fs.conn.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.Consolidate(ctx, req)
	if err != nil {
		return inFlagTerms(err, req)
	}
	err = fs.out.print(stdout, resp, func(w io.Writer) {
		fmt.Fprintf(w, "consolidation %d of closing %d started: %d employees in %d chunks\n",
			resp.GetConsolidationId(), resp.GetClosingId(), resp.GetTotalEmployees(), resp.GetTotalChunks())
	})
	if err != nil || *noWatch {
		return err
	}
	return follow(ctx, client, &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: resp.GetConsolidationId()}}, fs.out, stdout, stderr)
}

// inFlagTerms says a Consolidate refusal in cierrectl's words where the API's
// would name a request field: a closing already consolidated needs -force.
func inFlagTerms(err error, req *consolidationv1.ConsolidateRequest) error {
	for _, d := range status.Convert(err).Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if ok && info.GetReason() == "ESTADO_MAY_NOT_START" && info.GetMetadata()["estado"] == "datos_consolidados" &&
			!req.GetForce() && req.GetMode() != consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED {
			return fmt.Errorf("closing %d is already datos_consolidados: pass -force (and -yes in a script) to consolidate it again",
				req.GetClosingId())
		}
	}
	return err
}

// refCommand is a command on one run, named by -closing or -run.
type refCommand struct {
	name string
	// ask, when set, is the question the command asks before doing anything,
	// unless -yes (confirm).
	ask func(ref) string
	// applies, when set, refuses what the command cannot do before asking (a
	// cancel of a run that has ended).
	applies func(context.Context, consolidationv1.ConsolidationServiceClient, ref) error
	do      func(context.Context, consolidationv1.ConsolidationServiceClient, ref, output, io.Writer, io.Writer) error
}

// run parses -addr, -closing/-run, -json (and -yes when the command asks),
// dials the coordinator, refuses what cannot apply, confirms and does the command.
func (c refCommand) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCallFlags(c.name)
	flags := addRef(fs.FlagSet)
	var yes *bool
	if c.ask != nil {
		yes = fs.Bool("yes", false, "do not ask for confirmation (a script must say it)")
	}
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := flags.check(); err != nil {
		return err
	}
	r := ref{run: *flags.run, closing: *flags.closing}
	client, closeConn, err := fs.conn.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	if c.applies != nil {
		if err := c.applies(ctx, client, r); err != nil {
			return err
		}
	}
	if c.ask != nil {
		if err := confirm(*yes, stderr, c.ask(r)); err != nil {
			return err
		}
	}
	return c.do(ctx, client, r, fs.out, stdout, stderr)
}

// ref is a run id, or a closing id meaning its latest run.
type ref struct{ run, closing int64 }

func (r ref) String() string {
	if r.run > 0 {
		return fmt.Sprintf("consolidation %d", r.run)
	}
	return fmt.Sprintf("the latest consolidation of closing %d", r.closing)
}

func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return refCommand{name: "watch", do: func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref, out output, stdout, stderr io.Writer) error {
		req := &consolidationv1.WatchConsolidationRequest{Ref: &consolidationv1.WatchConsolidationRequest_ClosingId{ClosingId: r.closing}}
		if r.run > 0 {
			req.Ref = &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: r.run}
		}
		return follow(ctx, client, req, out, stdout, stderr)
	}}.run(ctx, args, stdout, stderr)
}

// follow follows a run with WatchConsolidation until it ends, showing its
// progress on stderr (progressView) (with -json: printing every message on stdout), then
// prints the run's summary; its error carries the exit code of the run's end
// (runEndError). A watch that fails Unavailable (a coordinator restarting, a
// rolling update) is tried again with backoff; any other failure (NotFound,
// InvalidArgument, PermissionDenied, ...) is final at once.
func follow(ctx context.Context, client consolidationv1.ConsolidationServiceClient, req *consolidationv1.WatchConsolidationRequest,
	out output, stdout, stderr io.Writer) error {
	view := newProgressView(stderr)
	defer view.end()
	for failures := 0; ; failures++ {
		err := watchOnce(ctx, client, req, func(msg *consolidationv1.WatchConsolidationResponse) error {
			failures = 0 // the coordinator answered: a later break starts a new count
			if out.isJSON() {
				return out.print(stdout, msg, nil)
			}
			if msg.GetFinal() == nil { // the summary says how it ended
				view.show(msg.GetProgress())
			}
			return nil
		})
		var final finalError
		switch {
		case errors.As(err, &final):
			view.end()
			if !out.isJSON() {
				printSummary(stdout, final.c)
			}
			return runEndError(final.c)
		case ctx.Err() != nil || !retryable(err) || failures >= maxWatchFailures:
			return err
		}
		if err := backoff(ctx, failures); err != nil {
			return err
		}
	}
}

// maxWatchFailures is how many times in a row follow watches again after an
// Unavailable before it gives up: with backoff's delays, about two minutes.
const maxWatchFailures = 30

// retryable reports whether a watch that failed with err is worth trying again:
// only when the coordinator could not be reached or went away (Unavailable), or
// the stream ended without the run's end.
func retryable(err error) bool {
	return status.Code(err) == codes.Unavailable || errors.Is(err, io.EOF)
}

// backoff waits before the next watch after failures failures in a row: 250 ms
// doubling to at most 5 s. A variable: tests count the retries through it.
var backoff = func(ctx context.Context, failures int) error {
	d := min(250*time.Millisecond<<min(failures, 5), 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// finalError ends watchOnce with the run's end.
type finalError struct {
	c *consolidationv1.Consolidation
}

func (finalError) Error() string { return "the run ended" }

// watchOnce opens one WatchConsolidation stream and hands each message to each
// until the run's end (a finalError), a failure, or the stream's end (io.EOF).
func watchOnce(ctx context.Context, client consolidationv1.ConsolidationServiceClient, req *consolidationv1.WatchConsolidationRequest,
	each func(*consolidationv1.WatchConsolidationResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchConsolidation(ctx, req)
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := each(msg); err != nil {
			return err
		}
		if f := msg.GetFinal(); f != nil {
			return finalError{c: f}
		}
	}
}

// statusCmd shows a run as it is; it exits ExitOK whatever the run's estado
// (watch follows a run to its end and exits with it).
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return refCommand{name: "status", do: func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref, out output, stdout, _ io.Writer) error {
		resp, err := client.GetConsolidation(ctx, getRequest(r))
		if err != nil {
			return err
		}
		return out.print(stdout, resp, func(w io.Writer) { printSummary(w, resp.GetConsolidation()) })
	}}.run(ctx, args, stdout, stderr)
}

// getRequest asks for the run r names.
func getRequest(r ref) *consolidationv1.GetConsolidationRequest {
	if r.run > 0 {
		return &consolidationv1.GetConsolidationRequest{Ref: &consolidationv1.GetConsolidationRequest_ConsolidationId{ConsolidationId: r.run}}
	}
	return &consolidationv1.GetConsolidationRequest{Ref: &consolidationv1.GetConsolidationRequest_ClosingId{ClosingId: r.closing}}
}

func cancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return refCommand{name: "cancel", ask: func(r ref) string { return fmt.Sprintf("Cancel %s?", r) },
		applies: func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref) error {
			resp, err := client.GetConsolidation(ctx, getRequest(r))
			if err != nil {
				return err
			}
			if c := resp.GetConsolidation(); c.GetFinishedAt() != nil {
				return fmt.Errorf("consolidation %d of closing %d has already ended %s: nothing to cancel",
					c.GetConsolidationId(), c.GetClosingId(), c.GetEstado())
			}
			return nil
		},
		do: func(ctx context.Context, client consolidationv1.ConsolidationServiceClient, r ref, out output, stdout, _ io.Writer) error {
			req := &consolidationv1.CancelConsolidationRequest{Ref: &consolidationv1.CancelConsolidationRequest_ClosingId{ClosingId: r.closing}}
			if r.run > 0 {
				req.Ref = &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: r.run}
			}
			resp, err := client.CancelConsolidation(ctx, req)
			if err != nil {
				return err
			}
			return out.print(stdout, resp, func(w io.Writer) { printSummary(w, resp.GetConsolidation()) })
		}}.run(ctx, args, stdout, stderr)
}

// chunkLine adds a run's chunks up to its total: succeeded, failed, split
// (replaced by halves the total counts too), cancelled by the run's end, and,
// while it goes, those still to do.
func chunkLine(c *consolidationv1.Consolidation) string {
	parts := []string{count(c.GetChunksSucceeded()) + " succeeded"}
	add := func(n int32, what string) {
		if n > 0 {
			parts = append(parts, count(n)+" "+what)
		}
	}
	add(c.GetChunksFailed(), "failed")
	add(c.GetChunksSplit(), "split")
	add(c.GetChunksCancelled(), "cancelled (never finished)")
	add(c.GetTotalChunks()-c.GetChunksSucceeded()-c.GetChunksFailed()-c.GetChunksSplit()-c.GetChunksCancelled(), "to do")
	return strings.Join(parts, " + ") + " = " + count(c.GetTotalChunks())
}

// count writes a count as amounts are written: 20.000.
func count[N int32 | int64 | int](n N) string { return money.Grouped(int64(n)) }

// plural writes n and its noun, in the plural unless n is 1: "1 attempt", "3 attempts".
func plural[N int32 | int64 | int](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return count(n) + " " + noun + "s"
}

// employeeLine says how many of a run's employees have rows that remain, and
// what became of the others: failed, written and removed by the run's end,
// cancelled before their chunk finished.
func employeeLine(c *consolidationv1.Consolidation) string {
	s := count(c.GetEmployeesConsolidated()) + " of " + count(c.GetTotalEmployees()) + " consolidated"
	var rest []string
	if n := c.GetFailedEmployeesTotal(); n > 0 {
		rest = append(rest, count(n)+" failed")
	}
	if n := c.GetEmployeesRemoved(); n > 0 {
		rest = append(rest, count(n)+" written and removed at the end")
	}
	if n := c.GetEmployeesCancelled(); n > 0 {
		rest = append(rest, count(n)+" never finished")
	}
	if len(rest) > 0 {
		s += " (" + strings.Join(rest, ", ") + ")"
	}
	return s
}

// printFailedEmployees names each failed employee by RUT (what explain takes) and
// libro row, with its error, then how many the list leaves out and how to see
// why one failed.
func printFailedEmployees(w io.Writer, c *consolidationv1.Consolidation) {
	fe := c.GetFailedEmployees()
	for _, f := range fe {
		died := ""
		if f.GetWorkerDied() {
			died = ", workers died on it"
		}
		fmt.Fprintf(w, "  failed        RUT %s (libro row %d, chunk %d%s): %s\n", f.GetRut(), f.GetEmployeeId(),
			f.GetChunkIndex(), died, f.GetError())
	}
	if more := int(c.GetFailedEmployeesTotal()) - len(fe); more > 0 {
		fmt.Fprintf(w, "  failed        ... and %s more\n", count(more))
	}
	if len(fe) > 0 {
		fmt.Fprintf(w, "  why           cierrectl explain -closing %d -rut %s\n", c.GetClosingId(), fe[0].GetRut())
	}
}

func printSummary(w io.Writer, c *consolidationv1.Consolidation) {
	p := c.GetProgress()
	t := c.GetControlTotals()
	fmt.Fprintf(w, "consolidation %d of closing %d: %s\n", c.GetConsolidationId(), c.GetClosingId(), c.GetEstado())
	policy, _ := domainpb.PolicyFromProto(c.GetChunkPolicy())
	if policy == "" {
		policy = "unspecified"
	}
	fmt.Fprintf(w, "  chunks        %s (policy %s, size %d)\n", chunkLine(c), policy, c.GetChunkSize())
	fmt.Fprintf(w, "  employees     %s, %s, %s without libro\n",
		employeeLine(c), plural(c.GetRecordsCreated(), "record"), plural(c.GetUnmatchedNovedades(), "novedades row"))
	fmt.Fprintf(w, "  elapsed       %s\n", p.GetElapsed().AsDuration().Round(time.Millisecond))
	if c.GetFinishedAt() == nil {
		fmt.Fprintf(w, "  totals        pending: added up and verified when the run ends\n")
	} else {
		verified := "not verified"
		if t.GetVerified() {
			verified = "verified against the written rows"
		}
		fmt.Fprintf(w, "  totals        haberes %s, descuentos %s, líquido %s (%s)\n", money.Cents(t.GetTotalHaberesCents()).CLP(),
			money.Cents(t.GetTotalDescuentosCents()).CLP(), money.Cents(t.GetLiquidoPagarCents()).CLP(), verified)
	}
	if ct := c.GetClosingTotals(); ct != nil {
		fmt.Fprintf(w, "  closing       %s: haberes %s, descuentos %s, líquido %s (every run's rows, as they are now)\n",
			plural(ct.GetEmployees(), "employee"), money.Cents(ct.GetTotalHaberesCents()).CLP(), money.Cents(ct.GetTotalDescuentosCents()).CLP(),
			money.Cents(ct.GetLiquidoPagarCents()).CLP())
	}
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
		fmt.Fprintf(w, "  failed chunk  %d (employees %d..%d, %s): %s\n", f.GetChunkIndex(), f.GetFirstEmployeeId(),
			f.GetLastEmployeeId(), plural(f.GetAttempts(), "attempt"), f.GetError())
	}
	if more := int(c.GetFailedChunksTotal()) - len(c.GetFailedChunks()); more > 0 {
		fmt.Fprintf(w, "  failed chunk  ... and %s more\n", count(more))
	}
	printFailedEmployees(w, c)
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
