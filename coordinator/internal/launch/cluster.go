package launch

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"

	"google.golang.org/grpc"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// ClusterConfig says what StartCluster starts.
type ClusterConfig struct {
	BinDir      string // holds the coordinator and worker binaries
	LogDir      string // each process logs to NAME.log here
	DatabaseURL string
	RedisURL    string
	Workers     int // worker processes, named worker-1, worker-2, ...
	// WorkerEnv is added to every worker's environment, after DATABASE_URL and
	// WORKER_NAME (a variable named again here wins).
	WorkerEnv []string
	// WorkerMetrics gives each worker a METRICS_ADDR (/metrics) of its own
	// (default: off).
	WorkerMetrics bool
	// Pprof gives every process a PPROF_ADDR of its own (Process.PprofAddr), for
	// the benchmark's CPU profiles (default: off).
	Pprof bool
	// CoordinatorEnv is added to the coordinator's environment, after
	// DATABASE_URL, REDIS_URL and WORKER_TARGET (the workers' addresses); a
	// variable named again here wins.
	CoordinatorEnv []string
	// DeathSignal is sent to every process if this one dies (default: SIGTERM).
	DeathSignal syscall.Signal
	// Coordinators is how many coordinator replicas share the database, named
	// coordinator, coordinator-2, ... (default: 1).
	Coordinators int
	// TLS, when set, runs the cluster on mTLS (default: plaintext, each process
	// told ALLOW_PLAINTEXT=true, the services refusing it otherwise): each process
	// gets its certificate and policy from it and a plaintext HEALTH_ADDR, which
	// StartCluster waits on; the clients of Cluster present App's certificate.
	// WorkerEnv and CoordinatorEnv still win.
	TLS *DevTLS
}

// Cluster is a coordinator (or several replicas) and its workers, serving, and a
// client of each coordinator.
type Cluster struct {
	Workers     []*Process
	Coordinator *Process                                   // the first of Coordinators
	Client      consolidationv1.ConsolidationServiceClient // of Coordinator
	// Coordinators are every replica, and Clients a client of each, in order.
	Coordinators []*Process
	Clients      []consolidationv1.ConsolidationServiceClient
	conns        []*grpc.ClientConn
}

// StartCluster starts the workers and the coordinator and waits until each
// serves. On an error it stops whatever it started.
func StartCluster(ctx context.Context, cfg ClusterConfig) (_ *Cluster, err error) {
	c := &Cluster{}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	var targets []string
	for i := range cfg.Workers {
		name := fmt.Sprintf("worker-%d", i+1)
		env := []string{"DATABASE_URL=" + cfg.DatabaseURL, "WORKER_NAME=" + name}
		env = append(env, securityEnv(cfg.TLS, func(d *DevTLS) (grpcx.TLSFiles, string) { return d.Worker, d.WorkerPolicy })...)
		if cfg.WorkerMetrics {
			metricsAddr, err := FreeAddr()
			if err != nil {
				return nil, err
			}
			env = append(env, "METRICS_ADDR="+metricsAddr)
		}
		w, err := c.start(cfg, "worker", name, append(env, cfg.WorkerEnv...))
		if err != nil {
			return nil, err
		}
		c.Workers = append(c.Workers, w)
		targets = append(targets, w.Addr)
	}
	for i := range max(cfg.Coordinators, 1) {
		name := "coordinator"
		if i > 0 {
			name = fmt.Sprintf("coordinator-%d", i+1)
		}
		env := []string{"DATABASE_URL=" + cfg.DatabaseURL, "REDIS_URL=" + cfg.RedisURL,
			"WORKER_TARGET=" + strings.Join(targets, ",")}
		env = append(env, securityEnv(cfg.TLS, func(d *DevTLS) (grpcx.TLSFiles, string) { return d.Coordinator, d.CoordinatorPolicy })...)
		p, err := c.start(cfg, "coordinator", name, append(env, cfg.CoordinatorEnv...))
		if err != nil {
			return nil, err
		}
		c.Coordinators = append(c.Coordinators, p)
	}
	c.Coordinator = c.Coordinators[0]
	for _, p := range c.Processes() {
		if err := WaitServing(ctx, p.ProbeAddr()); err != nil {
			return nil, fmt.Errorf("%s: %w (logs in %s)", p.Name, err, cfg.LogDir)
		}
	}
	var client grpcx.TLSFiles // plaintext
	if cfg.TLS != nil {
		client = cfg.TLS.App
	}
	for _, p := range c.Coordinators {
		conn, err := client.Dial(p.Addr)
		if err != nil {
			return nil, err
		}
		c.conns = append(c.conns, conn)
		c.Clients = append(c.Clients, consolidationv1.NewConsolidationServiceClient(conn))
	}
	c.Client = c.Clients[0]
	return c, nil
}

// securityEnv is a process's TLS environment from dev (its files and policy, as
// of picks them), or ALLOW_PLAINTEXT=true without dev: a local cluster for the
// demo, the benchmark and tests, never a deployment.
func securityEnv(dev *DevTLS, of func(*DevTLS) (grpcx.TLSFiles, string)) []string {
	if dev == nil {
		return []string{grpcx.EnvAllowPlaintext + "=true"}
	}
	return Env(of(dev))
}

func (c *Cluster) start(cfg ClusterConfig, binary, name string, env []string) (*Process, error) {
	p, err := NewProcess(filepath.Join(cfg.BinDir, binary), name, filepath.Join(cfg.LogDir, name+".log"), env...)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		if p.HealthAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	if cfg.Pprof {
		if p.PprofAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
		p.Env = append(p.Env, "PPROF_ADDR="+p.PprofAddr)
	}
	p.DeathSignal = cfg.DeathSignal
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return p, nil
}

// Processes are the workers, then the coordinators.
func (c *Cluster) Processes() []*Process {
	return append(append([]*Process(nil), c.Workers...), c.Coordinators...)
}

// Stop closes the client and stops every process (SIGTERM, then a kill after
// 30s), the workers first.
func (c *Cluster) Stop() {
	c.closeConn()
	for _, p := range c.Processes() {
		p.Stop()
	}
}

// Kill kills every process at once (SIGKILL), the coordinators first, and closes
// the clients.
func (c *Cluster) Kill() {
	for _, p := range c.Coordinators {
		p.Kill()
	}
	for _, w := range c.Workers {
		w.Kill()
	}
	c.closeConn()
}

func (c *Cluster) closeConn() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}
