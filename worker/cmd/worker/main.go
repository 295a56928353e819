// Command worker serves WorkerService: it consolidates the chunks the coordinator
// hands it.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/storetls"
	"github.com/nominacl/consolidation/pkg/telemetry"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
	"github.com/nominacl/consolidation/worker/internal/chunk"
	"github.com/nominacl/consolidation/worker/internal/server"
)

type settings struct {
	databaseURL string
	pooler      store.Pooler
	grpcAddr    string
	healthAddr  string
	metricsAddr string
	pprofAddr   string
	security    grpcx.Security
	traceExport telemetry.TraceExport
	name        string
	maxInFlight int
	softTimeout time.Duration
	drain       time.Duration
	faults      *chunk.Faults
}

func load() (settings, error) {
	var env config.Env
	host, _ := os.Hostname()
	s := settings{
		databaseURL: env.Required("DATABASE_URL"),
		grpcAddr:    env.String("GRPC_ADDR", ":50052"),
		healthAddr:  env.String("HEALTH_ADDR", ""),
		metricsAddr: env.String("METRICS_ADDR", ""),
		pprofAddr:   env.String("PPROF_ADDR", ""),
		maxInFlight: env.Int("WORKER_MAX_IN_FLIGHT", server.DefaultMaxInFlight, 1),
		softTimeout: env.Duration("CHUNK_SOFT_TIMEOUT", chunk.DefaultSoftTimeout),
		drain:       env.Duration("SHUTDOWN_DRAIN", grpcx.DefaultDrain),
	}
	s.name = env.String("WORKER_NAME", host+s.grpcAddr)
	security, secErr := grpcx.SecurityFromEnv(os.Getenv)
	s.security = security
	traceExport, traceErr := telemetry.TraceExportFromEnv(os.Getenv)
	s.traceExport = traceExport
	pooler, poolerErr := store.ParsePooler(os.Getenv("DATABASE_POOLER"))
	s.pooler = pooler
	faults, err := chunk.FaultsFromEnv(os.Getenv)
	if err != nil || secErr != nil || traceErr != nil || poolerErr != nil {
		return s, errors.Join(env.Err(), secErr, traceErr, poolerErr, err)
	}
	s.faults = faults
	stores, err := storetls.FromEnv(os.Getenv)
	if err == nil && s.databaseURL != "" {
		if err = stores.CheckDatabaseURL(s.databaseURL); err != nil {
			err = fmt.Errorf("DATABASE_URL: %w", err)
		}
	}
	return s, errors.Join(env.Err(), err)
}

const usage = `worker serves WorkerService, configured by the environment (README, "Settings").

Usage:
  worker            serve
  worker -version   print the version and VCS revision
  worker -h         this text

Flags:
`

func main() {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	if code, done := config.ParseArgs(fs, os.Args[1:], os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "worker: unexpected argument %q\n\n%s", fs.Arg(0), usage)
		fs.PrintDefaults()
		os.Exit(2)
	}
	logger := config.Logger("worker", os.Getenv("LOG_LEVEL"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, logger)
	stop()
	if err != nil {
		logger.Error("worker failed", "error", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger) error {
	tuneGC(logger)
	s, err := load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	stopTelemetry, err := telemetry.Start(ctx, logger, "worker", telemetry.Endpoints{
		MetricsAddr: s.metricsAddr, PprofAddr: s.pprofAddr, Traces: s.traceExport})
	if err != nil {
		return err
	}
	defer stopTelemetry()

	pool, err := store.OpenPool(ctx, s.databaseURL, s.pooler, "consolidation-worker", int32(s.maxInFlight+1), int32(s.maxInFlight+2),
		telemetry.PgxTracer())
	if err != nil {
		return err
	}
	defer pool.Close()

	processor, err := chunk.NewProcessor(logger, chunk.Config{Name: s.name, SoftTimeout: s.softTimeout, Faults: s.faults}, pool)
	if err != nil {
		return err
	}
	// Only the coordinator's identity may call ProcessChunk: the policy file says so.
	secure, err := s.security.ServerOptions(logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.grpcAddr)
	if err != nil {
		return fmt.Errorf("GRPC_ADDR %s: %w", s.grpcAddr, err)
	}
	srv := grpcx.NewServer(logger, secure...)
	if s.healthAddr != "" {
		hl, err := net.Listen("tcp", s.healthAddr)
		if err != nil {
			return fmt.Errorf("HEALTH_ADDR %s: %w", s.healthAddr, err)
		}
		srv.ServeHealth(hl)
	}
	consolidationv1.RegisterWorkerServiceServer(srv.GRPC, server.NewWorkerServer(logger, processor, s.maxInFlight))
	if s.faults != nil {
		logger.WarnContext(ctx, "fault injection is on (test only)")
	}
	logger.InfoContext(ctx, "worker serving", "addr", l.Addr().String(), "max_in_flight", s.maxInFlight)
	return srv.Serve(ctx, l, s.drain)
}

// The worker's garbage-collector settings unless GOGC / GOMEMLIMIT are set: a
// worker's heap is small and short-lived (one chunk), so it collects less often
// (docs/benchmarks.md measured the gain) but stays well under a pod's memory.
const (
	defaultGCPercent   = 300
	defaultMemoryLimit = 96 << 20
)

// tuneGC applies the worker's garbage-collector defaults where the environment
// does not set them, and says so in the log.
func tuneGC(logger *slog.Logger) {
	gogc, limit := os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT")
	if gogc == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if limit == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	logger.Info("garbage collector", "gogc", cmp.Or(gogc, strconv.Itoa(defaultGCPercent)),
		"gomemlimit_bytes", cmp.Or(limit, strconv.Itoa(defaultMemoryLimit)))
}
