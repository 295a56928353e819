// Command coordinator serves ConsolidationService; `coordinator migrate` brings the
// database schema up to date and exits (`migrate -print` prints the SQL instead);
// `coordinator grants -role NAME` prints the run-time role's grants.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/httpapi"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/coordinator/internal/retention"
	"github.com/nominacl/consolidation/coordinator/internal/server"
	"github.com/nominacl/consolidation/coordinator/internal/webui"
	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/redact"
	"github.com/nominacl/consolidation/pkg/schema"
	"github.com/nominacl/consolidation/pkg/store"
	"github.com/nominacl/consolidation/pkg/storetls"
	"github.com/nominacl/consolidation/pkg/telemetry"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

const usage = `coordinator serves ConsolidationService, configured by the environment (README, "Settings").

Usage:
  coordinator [serve]           serve (the default)
  coordinator migrate [-print]  bring the database schema up to date and exit (-print: print the SQL for a DBA instead)
  coordinator grants -role NAME print the grants the run-time role NAME needs (pkg/schema/runtime_grants.sql), for a DBA
  coordinator -version          print the version and VCS revision
  coordinator -h                this text

Flags:
`

func main() {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	if code, done := config.ParseArgs(fs, os.Args[1:], os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	args := fs.Args()
	if len(args) > 0 && args[0] != "serve" && args[0] != "migrate" && args[0] != "grants" {
		fmt.Fprintf(os.Stderr, "coordinator: unknown command %q\n\n%s", args[0], usage)
		fs.PrintDefaults()
		os.Exit(2)
	}
	logger := config.Logger("coordinator", os.Getenv("LOG_LEVEL"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, logger, args)
	stop()
	if err != nil {
		logger.Error("coordinator failed", "error", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, args []string) error {
	if len(args) > 0 && args[0] == "migrate" {
		return migrate(ctx, logger, args[1:])
	}
	if len(args) > 0 && args[0] == "grants" {
		return grants(args[1:])
	}
	return serve(ctx, logger)
}

func migrate(ctx context.Context, logger *slog.Logger, args []string) error {
	flags := flag.NewFlagSet("migrate", flag.ContinueOnError)
	printOnly := flags.Bool("print", false, "print the SQL that migrate would run, for a DBA to apply, and change nothing")
	if err := flags.Parse(args); err != nil {
		return err
	}
	var env config.Env
	url := env.Required("DATABASE_URL")
	if err := env.Err(); err != nil {
		return err
	}
	// The migration needs one session throughout: its advisory lock, and index
	// builds outside a transaction (docs/capacity.md, "Through a connection pooler").
	if pooler, err := store.ParsePooler(os.Getenv("DATABASE_POOLER")); err != nil {
		return err
	} else if pooler != store.PoolerNone {
		return errors.New("migrate needs a session of its own: give it a DATABASE_URL that reaches PostgreSQL directly " +
			"(or through a pooler in session mode) and DATABASE_POOLER unset")
	}
	stores, err := storetls.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if err := stores.CheckDatabaseURL(url); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	pool, err := store.OpenPool(ctx, url, store.PoolerNone, "consolidation-migrate", 0, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	if *printOnly {
		return schema.PrintSQL(ctx, pool, os.Stdout)
	}
	applied, err := schema.Migrate(ctx, logger, pool)
	if err != nil {
		return err
	}
	logger.InfoContext(ctx, "schema up to date", "applied", applied)
	return nil
}

// grants prints schema.RuntimeGrants for the role -role names: what README's
// block shows, from the one file that holds it.
func grants(args []string) error {
	flags := flag.NewFlagSet("grants", flag.ContinueOnError)
	role := flags.String("role", "", "the run-time role to grant to (required)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *role == "" {
		return errors.New("grants: -role NAME is required")
	}
	_, err := fmt.Fprint(os.Stdout, schema.RuntimeGrants(*role))
	return err
}

type settings struct {
	databaseURL, redisPrefix            string
	redis                               *redis.Options // REDIS_URL, REDIS_TLS_CA_FILE
	pooler                              store.Pooler
	djangoCache                         progress.DjangoCache
	grpcAddr, metricsAddr, workerTarget string
	healthAddr, pprofAddr, httpAddr     string
	workerIdentity                      string
	security                            grpcx.Security
	traceExport                         telemetry.TraceExport
	workerInFlight, poolConns           int
	readConns, readsInFlight            int
	engine                              engine.Config
	server                              server.Config
	retention                           retention.Config
	drain                               time.Duration
	ui                                  webui.ServeConfig // its Addr "": no dashboard
}

func load() (settings, error) {
	var env config.Env
	s := settings{
		databaseURL:    env.Required("DATABASE_URL"),
		workerTarget:   env.Required("WORKER_TARGET"),
		redisPrefix:    env.String("REDIS_PREFIX", progress.DefaultPrefix),
		grpcAddr:       env.String("GRPC_ADDR", ":50051"),
		metricsAddr:    env.String("METRICS_ADDR", ""),
		healthAddr:     env.String("HEALTH_ADDR", ""),
		pprofAddr:      env.String("PPROF_ADDR", ""),
		httpAddr:       env.String("HTTP_ADDR", ""),
		workerInFlight: env.Int("WORKER_MAX_IN_FLIGHT", dispatch.DefaultMaxInFlightPerWorker, 1),
		poolConns:      env.Int("DATABASE_MAX_CONNS", engine.DefaultPoolConns, engine.ReservedConns+1),
		readConns:      env.Int("DATABASE_READ_MAX_CONNS", engine.DefaultReadPoolConns, 1),
		readsInFlight:  env.Int("READ_MAX_IN_FLIGHT", server.DefaultMaxReadsInFlight, 1),
		drain:          env.Duration("SHUTDOWN_DRAIN", grpcx.DefaultDrain),
		engine: engine.Config{
			DefaultPolicy:         domain.Policy(env.String("CHUNK_POLICY", string(domain.DefaultPolicy))),
			ChunkHardTimeout:      env.Duration("CHUNK_HARD_TIMEOUT", engine.DefaultChunkHardTimeout),
			RunTimeout:            env.Duration("RUN_TIMEOUT", engine.DefaultRunTimeout),
			MaxAttempts:           env.Int("CHUNK_MAX_ATTEMPTS", engine.DefaultMaxAttempts, 1),
			BusyBudget:            env.Duration("CHUNK_BUSY_BUDGET", engine.DefaultBusyBudget),
			RetryBaseDelay:        env.Duration("RETRY_BASE_DELAY", engine.DefaultRetryBaseDelay),
			ReconcileEvery:        env.Duration("RECONCILE_EVERY", engine.DefaultReconcileEvery),
			LeaseTTL:              env.Duration("LEASE_TTL", engine.DefaultLeaseTTL),
			ReadConnsWhileRunning: env.Int("DATABASE_READ_RUNNING_CONNS", engine.DefaultReadConnsWhileRunning, 1),
			ReadBusyPercentWhileRunning: env.Int("DATABASE_READ_RUNNING_BUSY_PERCENT",
				engine.DefaultReadBusyPercentWhileRunning, 1),
		},
		retention: retention.Config{
			Retention: env.Duration("LEDGER_RETENTION", retention.DefaultRetention),
			Every:     env.Duration("LEDGER_PRUNE_EVERY", retention.DefaultEvery),
		},
		server: server.Config{
			MaxWatchStreamsPerCaller: env.Int("MAX_WATCH_STREAMS_PER_CALLER", server.DefaultMaxWatchStreamsPerCaller, 1),
		},
	}
	s.djangoCache = progress.DjangoCache{KeyPrefix: env.String("DJANGO_CACHE_KEY_PREFIX", ""),
		Version: env.Int("DJANGO_CACHE_VERSION", progress.DefaultDjangoCacheVersion, 1)}
	s.ui.Addr = env.String("UI_ADDR", "")
	s.ui.Config.ProxyHeader = env.String("UI_PROXY_HEADER", webui.DefaultProxyHeader)
	proxies, proxiesErr := webui.ParseTrustedProxies(env.String("UI_TRUSTED_PROXIES", ""))
	if proxiesErr != nil {
		return s, fmt.Errorf("UI_TRUSTED_PROXIES: %w", proxiesErr)
	}
	s.ui.Config.TrustedProxies = proxies
	if _, err := domain.ParsePolicy(string(s.engine.DefaultPolicy)); err != nil {
		return s, fmt.Errorf("CHUNK_POLICY: %w", err)
	}
	storesErr := s.loadStores(&env)
	var err, traceErr, poolerErr error
	s.pooler, poolerErr = store.ParsePooler(os.Getenv("DATABASE_POOLER"))
	s.security, err = grpcx.SecurityFromEnv(os.Getenv)
	s.ui.Security = s.security
	s.workerIdentity = env.String("WORKER_IDENTITY", "spiffe://"+s.security.Identities.TrustDomain+"/worker")
	s.traceExport, traceErr = telemetry.TraceExportFromEnv(os.Getenv)
	return s, errors.Join(env.Err(), storesErr, err, traceErr, poolerErr)
}

// loadStores checks DATABASE_URL and parses REDIS_URL under the settings of
// storetls (REQUIRE_VERIFIED_DB_TLS, REDIS_TLS_CA_FILE).
func (s *settings) loadStores(env *config.Env) error {
	redisURL := env.Required("REDIS_URL")
	stores, err := storetls.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	var dbErr, redisErr error
	if s.databaseURL != "" {
		if dbErr = stores.CheckDatabaseURL(s.databaseURL); dbErr != nil {
			dbErr = fmt.Errorf("DATABASE_URL: %w", dbErr)
		}
	}
	if redisURL != "" {
		if s.redis, redisErr = redis.ParseURL(redisURL); redisErr != nil {
			redisErr = redact.Err(redisErr)
		} else {
			redisErr = stores.RedisTLS(s.redis.TLSConfig)
		}
		if redisErr != nil {
			redisErr = fmt.Errorf("REDIS_URL: %w", redisErr)
		}
	}
	return errors.Join(dbErr, redisErr)
}

func serve(ctx context.Context, logger *slog.Logger) error {
	s, err := load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	stopTelemetry, err := telemetry.Start(ctx, logger, "coordinator", telemetry.Endpoints{
		MetricsAddr: s.metricsAddr, PprofAddr: s.pprofAddr, Traces: s.traceExport})
	if err != nil {
		return err
	}
	defer stopTelemetry()
	secure, err := s.security.ServerOptions(logger)
	if err != nil {
		return err
	}
	// The coordinator dials the workers with its own certificate and checks that
	// theirs names the workers' identity (a SPIFFE ID, whatever pod IP is dialled).
	dialSecure, err := s.security.DialOptions(logger)
	if err != nil {
		return err
	}
	dialSecure = append(dialSecure, grpcx.WithPeerIdentity(s.security.Identities, s.workerIdentity))

	// The pool's size bounds the runs driven at once (engine.MaxRunsForPool).
	pool, err := store.OpenPool(ctx, s.databaseURL, s.pooler, "consolidation-coordinator", 4, int32(s.poolConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	// The read RPCs' own pool (engine.ForReading): no burst of reads can take the
	// connections that drive runs and renew their leases.
	reads, err := store.OpenPool(ctx, s.databaseURL, s.pooler, "consolidation-coordinator-reads", 0, int32(s.readConns))
	if err != nil {
		return err
	}
	defer reads.Close()
	// A database the application changed under the service is refused here, by
	// table and column, not half-way through a run. One that cannot be reached yet
	// is not: the coordinator serves and answers Unavailable until it can.
	// A database some migration of this build was not applied to is refused
	// first, saying the command that fixes it (its columns would be listed
	// missing by the dozen). A run-time role that may not read schema_migrations
	// leaves it to the columns' check.
	var notMigrated *schema.NotMigratedError
	if err := schema.CheckMigrated(ctx, pool); errors.As(err, &notMigrated) {
		return err
	}
	var mismatch *schema.MismatchError
	if err := schema.Validate(ctx, pool); errors.As(err, &mismatch) {
		return err
	} else if err != nil {
		logger.WarnContext(ctx, "payroll tables not checked", "error", err.Error())
	}
	rdb := redis.NewClient(s.redis)
	defer rdb.Close()
	dispatcher, err := dispatch.NewDispatcher(logger, dispatch.Config{Target: s.workerTarget, MaxInFlightPerWorker: s.workerInFlight,
		DialOptions: dialSecure})
	if err != nil {
		return err
	}
	defer dispatcher.Close()
	keys := progress.NewRedisStore(rdb, s.redisPrefix, s.djangoCache)
	eng, err := engine.NewEngine(logger, s.engine, pool, reads, dispatcher, keys)
	if err != nil {
		return err
	}
	pruner, err := retention.NewPruner(logger, s.retention, pool, keys)
	if err != nil {
		return err
	}

	l, err := net.Listen("tcp", s.grpcAddr)
	if err != nil {
		return fmt.Errorf("GRPC_ADDR %s: %w", s.grpcAddr, err)
	}
	// Audit outside the read limits, so a shed read is audited too.
	limits := server.NewReadLimiter(s.readsInFlight)
	srv := grpcx.NewServer(logger, append(secure, grpcx.WithServerInterceptors(
		[]grpc.UnaryServerInterceptor{server.AuditInterceptor(logger), limits.Unary()},
		[]grpc.StreamServerInterceptor{server.AuditStreamInterceptor(logger), limits.Stream()}))...)
	if s.healthAddr != "" {
		hl, err := net.Listen("tcp", s.healthAddr)
		if err != nil {
			return fmt.Errorf("HEALTH_ADDR %s: %w", s.healthAddr, err)
		}
		srv.ServeHealth(hl)
	}
	consolidationv1.RegisterConsolidationServiceServer(srv.GRPC, server.NewConsolidationServer(logger, eng, s.server))
	var httpL net.Listener
	if s.httpAddr != "" {
		if httpL, err = net.Listen("tcp", s.httpAddr); err != nil {
			return fmt.Errorf("HTTP_ADDR %s: %w", s.httpAddr, err)
		}
	}
	httpTLS, err := s.security.HTTPServerTLS(logger)
	if err != nil {
		return err
	}

	// The engine resumes unfinished runs now. On SIGTERM it stops driving at once:
	// in-flight chunk calls are cancelled (fencing keeps them from committing) and
	// their runs stay in the ledger, to be resumed by the next coordinator; watch
	// streams end; then the gRPC server drains the remaining calls.
	var wg sync.WaitGroup
	wg.Go(func() { eng.Run(ctx) })
	wg.Go(func() { pruner.Run(ctx) })
	// The HTTP/JSON API calls the gRPC server in process, through its
	// authorization, audit, limits and metrics (package httpapi).
	var httpErr error
	if httpL != nil {
		logger.InfoContext(ctx, "HTTP API serving", "addr", httpL.Addr().String(), "tls", httpTLS != nil)
		wg.Go(func() { httpErr = httpapi.Serve(ctx, logger, httpL, httpapi.NewHandler(srv), httpTLS, s.drain) })
	}
	if s.ui.Addr != "" {
		uiStopped, err := webui.Serve(ctx, logger, s.ui, eng, dispatcher)
		if err != nil {
			return fmt.Errorf("UI_ADDR %s: %w", s.ui.Addr, err)
		}
		defer uiStopped()
	}
	logger.InfoContext(ctx, "coordinator serving", "addr", l.Addr().String(), "workers", s.workerTarget)
	err = srv.Serve(ctx, l, s.drain)
	wg.Wait()
	return errors.Join(err, httpErr)
}
