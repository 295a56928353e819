package localdb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nominacl/consolidation/pkg/devca"
)

// RedisServer is a redis-server started in a temporary directory on a free port.
type RedisServer struct {
	dir  string
	port int
	// tlsArgs serve TLS only (StartRedisTLS); roots is then the CA the
	// start-up check verifies the server against.
	tlsArgs []string
	roots   *x509.CertPool
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartRedis starts a private redis-server that keeps nothing on disk.
func StartRedis(ctx context.Context) (*RedisServer, error) {
	return startRedis(ctx, nil)
}

// StartRedisTLS is StartRedis serving TLS only (no plaintext port), with a
// certificate ca signs for 127.0.0.1 and localhost; clients present none. Its
// URL is rediss://.
func StartRedisTLS(ctx context.Context, ca *devca.CA) (*RedisServer, error) {
	return startRedis(ctx, ca)
}

func startRedis(ctx context.Context, ca *devca.CA) (*RedisServer, error) {
	bin, err := redisBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	var tlsArgs []string
	var roots *x509.CertPool
	if ca != nil {
		if tlsArgs, err = writeRedisCert(dir, ca); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		roots = x509.NewCertPool()
		roots.AddCert(ca.Cert)
	}
	return startOnFreePort(dir, func(port int) *RedisServer {
		return &RedisServer{dir: dir, port: port, tlsArgs: tlsArgs, roots: roots}
	}, func(s *RedisServer) error { return s.start(ctx, bin) })
}

func (s *RedisServer) start(ctx context.Context, bin string) error {
	s.done = make(chan struct{})
	args := []string{"--port", strconv.Itoa(s.port)}
	opts := &redis.Options{Addr: s.Addr(), MaxRetries: -1}
	if s.tlsArgs != nil {
		args = append([]string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}, s.tlsArgs...)
		opts.TLSConfig = &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	s.cmd = exec.Command(bin, append(args, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--databases", "16", "--logfile", filepath.Join(s.dir, "redis.log"))...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	client := redis.NewClient(opts)
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

// URL is a URL of the server's database 0: redis://, or rediss:// for a server
// started with StartRedisTLS (verified against the CA's certificate, given to
// the client apart, as REDIS_TLS_CA_FILE).
func (s *RedisServer) URL() string {
	if s.tlsArgs != nil {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// writeRedisCert writes a certificate ca signs for 127.0.0.1 and localhost, its
// key and ca's certificate into dir, and returns the redis-server arguments that
// use them. Redis wants a CA even when clients present no certificate.
func writeRedisCert(dir string, ca *devca.CA) ([]string, error) {
	leaf, err := serverLeaf(ca)
	if err != nil {
		return nil, err
	}
	if err := ca.WriteBundle(dir, leaf); err != nil {
		return nil, err
	}
	cert, key, caFile := devca.Paths(dir)
	return []string{"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "no"}, nil
}

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
