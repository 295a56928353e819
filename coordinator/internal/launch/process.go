// Package launch starts the local cluster — throwaway PostgreSQL and Redis, a
// coordinator and workers as child processes — and waits for it to serve: what
// the demo, the benchmark and the end-to-end tests share.
package launch

import (
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/pkg/grpcx"
	"github.com/nominacl/consolidation/pkg/localdb"
)

// Process is a service binary run as a child process. It may be killed and
// started again, with the same address, environment and log.
type Process struct {
	Name string
	Addr string // its gRPC address, given to it as GRPC_ADDR
	// HealthAddr, when set, is given to it as HEALTH_ADDR: a plaintext port
	// serving only gRPC health.
	HealthAddr string
	// PprofAddr, when set, is where it serves Go's profiler (PPROF_ADDR, set by
	// the caller in Env).
	PprofAddr string
	Path      string   // the binary
	Env       []string // added to this process's environment
	LogPath   string   // stdout and stderr are appended here
	// DeathSignal is sent to the child if this process dies (default: SIGTERM).
	DeathSignal syscall.Signal

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// NewProcess describes the binary at path, run as name on a free loopback
// address; Start runs it.
func NewProcess(path, name, logPath string, env ...string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return &Process{Name: name, Addr: addr, Path: path, Env: env, LogPath: logPath}, nil
}

// Start runs the process: the first time, or again after it ended.
func (p *Process) Start() error {
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Path)
	cmd.Env = append(append(os.Environ(), p.Env...), "GRPC_ADDR="+p.Addr)
	if p.HealthAddr != "" {
		cmd.Env = append(cmd.Env, "HEALTH_ADDR="+p.HealthAddr)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: cmp.Or(p.DeathSignal, syscall.SIGTERM)}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

func (p *Process) running() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Pid is the process id of the last start (0 before Start).
func (p *Process) Pid() int {
	if cmd, _ := p.running(); cmd != nil {
		return cmd.Process.Pid
	}
	return 0
}

// Done is closed when the last started process has ended (nil before Start).
func (p *Process) Done() <-chan struct{} {
	_, done := p.running()
	return done
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error {
	cmd, _ := p.running()
	if cmd == nil {
		return errors.New("not started")
	}
	return cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits up to 30s for the process to go, then kills it.
func (p *Process) Stop() {
	cmd, done := p.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	cmd, done := p.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// ProbeAddr is where a plaintext health check reaches the process: its
// HealthAddr when it has one, else its gRPC address.
func (p *Process) ProbeAddr() string { return cmp.Or(p.HealthAddr, p.Addr) }

// WaitServing waits up to 30s for addr's gRPC health to say SERVING.
func WaitServing(ctx context.Context, addr string) error {
	conn, err := grpcx.Dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
	}
	return errors.New("not serving after 30s")
}

// FreeAddr is a loopback host:port nobody listens on right now.
func FreeAddr() (string, error) {
	port, err := localdb.FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}
