package launch_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

// script writes an executable shell script that logs its GRPC_ADDR and X, then
// sleeps until it is signalled.
func script(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "service")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\necho \"serving on $GRPC_ADDR x=$X\"\nexec sleep 60\n"), 0o755))
	return path
}

func waitLog(t *testing.T, path, want string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), want) == n
	}, 10*time.Second, 10*time.Millisecond, "%q not %d times in the log", want, n)
}

func TestProcessRestartsWithTheSameAddressAndLog(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "service.log")
	p, err := launch.NewProcess(script(t), "service", logPath, "X=1")
	require.NoError(t, err)
	require.NotEmpty(t, p.Addr)
	require.NoError(t, p.Start())
	t.Cleanup(p.Kill)
	waitLog(t, logPath, "serving on "+p.Addr+" x=1", 1)
	first := p.Pid()

	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("Kill returned before the process ended")
	}
	p.Env = append(p.Env, "X=2") // the later value wins
	require.NoError(t, p.Start())
	waitLog(t, logPath, "serving on "+p.Addr+" x=2", 1)
	waitLog(t, logPath, "serving on "+p.Addr, 2)
	require.NotEqual(t, first, p.Pid())

	p.Stop() // SIGTERM ends the sleep
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Stop returned before the process ended")
	}
}

func TestSignalBeforeStartFails(t *testing.T) {
	t.Parallel()
	p, err := launch.NewProcess(script(t), "service", filepath.Join(t.TempDir(), "service.log"))
	require.NoError(t, err)
	require.Error(t, p.Signal(syscall.SIGTERM))
	require.Zero(t, p.Pid())
	p.Stop() // nothing to stop
	p.Kill()
}

func TestWaitServingSeesAServingServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpcx.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, time.Second) }()
	require.NoError(t, launch.WaitServing(context.Background(), l.Addr().String()))
	cancel()
	require.NoError(t, <-done)
}
