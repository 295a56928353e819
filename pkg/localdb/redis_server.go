package localdb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server started in a temporary directory on a free port.
type RedisServer struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts a private redis-server that keeps nothing on disk.
func StartRedis(ctx context.Context) (*RedisServer, error) {
	bin, err := redisBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	return startOnFreePort(dir, func(port int) *RedisServer { return &RedisServer{dir: dir, port: port} },
		func(s *RedisServer) error { return s.start(ctx, bin) })
}

func (s *RedisServer) start(ctx context.Context, bin string) error {
	s.done = make(chan struct{})
	s.cmd = exec.Command(bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--databases", "16", "--logfile", filepath.Join(s.dir, "redis.log"))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	client := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server exited during start: %s", tail(log, 2000))
		default:
		}
		if err := client.Ping(ctx).Err(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redis-server did not answer within 30s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is host:port of the server.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is a redis:// URL of the server's database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Kill stops the server at once (SIGKILL), losing everything in it.
func (s *RedisServer) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Restart kills the server and starts an empty one on the same port.
func (s *RedisServer) Restart(ctx context.Context) error {
	s.Kill()
	bin, err := redisBinary()
	if err != nil {
		return err
	}
	return s.start(ctx, bin)
}

// Stop kills the server and removes its directory.
func (s *RedisServer) Stop() {
	s.Kill()
	_ = os.RemoveAll(s.dir)
}

func redisBinary() (string, error) {
	find := func() string {
		p, _ := exec.LookPath("redis-server")
		return p
	}
	return installed("redis-server", find)
}
