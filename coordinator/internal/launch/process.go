// Package launch starts the service binaries as child processes and waits for them
// to serve: what the demo and the benchmark share.
package launch

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// Process is a started service binary.
type Process struct {
	Name string
	Addr string // its gRPC address
	Cmd  *exec.Cmd
}

// Start runs path with env added to this process's environment and GRPC_ADDR set
// to a free loopback port, logging to logPath. The child is sent SIGTERM if this
// process dies.
func Start(path, name, logPath string, env ...string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path)
	cmd.Env = append(append(os.Environ(), env...), "GRPC_ADDR="+addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
	}()
	return &Process{Name: name, Addr: addr, Cmd: cmd}, nil
}

// Stop sends SIGTERM and waits up to 30s for the process to go.
func (p *Process) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p.Cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
	}
	_ = p.Cmd.Process.Kill()
}

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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
