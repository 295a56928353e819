package localdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/devca"
)

// PostgresServer is a PostgreSQL server started from initdb in a temporary directory.
type PostgresServer struct {
	dir  string
	port int
	bin  string
	cred *syscall.Credential
	// settings are the caller's extra -c settings, kept for Restart.
	settings []string
	cmd      *exec.Cmd
	done     chan struct{}
}

// StartPostgres initializes a cluster in a temporary directory and starts it on a
// free loopback port, as the "postgres" (or "nobody") user when run as root. It is
// tuned for throwaway data (tests, the demo, the benchmark): no fsync, no durable
// commits. settings are more server settings ("name=value", each passed as -c),
// e.g. the benchmark's shared_preload_libraries=pg_stat_statements.
func StartPostgres(ctx context.Context, settings ...string) (*PostgresServer, error) {
	return startPostgres(ctx, nil, settings)
}

// StartPostgresTLS is StartPostgres with TLS on (ssl=on), presenting a
// certificate ca signs for 127.0.0.1 and localhost, so that a client can connect
// with sslmode=verify-full and ca's certificate as sslrootcert (VerifyFullURL).
// Clients may still connect without TLS (URL).
func StartPostgresTLS(ctx context.Context, ca *devca.CA, settings ...string) (*PostgresServer, error) {
	return startPostgres(ctx, ca, settings)
}

func startPostgres(ctx context.Context, ca *devca.CA, settings []string) (*PostgresServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	if ca != nil {
		tlsSettings, err := writeServerCert(dir, ca, cred)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		settings = append(tlsSettings, settings...)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	return startOnFreePort(dir, func(port int) *PostgresServer {
		return &PostgresServer{dir: dir, port: port, bin: bin, cred: cred, settings: settings, done: make(chan struct{})}
	},
		func(s *PostgresServer) error { return s.start(ctx, bin, cred) })
}

func (s *PostgresServer) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	logFile, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return err
	}
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	args := []string{"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
		"-c", "max_wal_size=2GB",
	}
	for _, setting := range s.settings {
		args = append(args, "-c", setting)
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: if the process that started the
	// server dies, the server goes with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("postgres exited during start: %s", tail(log, 2000))
		default:
		}
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(pingCtx, s.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("postgres did not accept connections within 60s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is a connection URL for a database of the server.
func (s *PostgresServer) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, database)
}

// VerifyFullURL is a connection URL for a database of a server started with
// StartPostgresTLS that verifies the server's certificate and name against the
// CA in caFile (sslmode=verify-full).
func (s *PostgresServer) VerifyFullURL(database, caFile string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s",
		s.port, database, url.QueryEscape(caFile))
}

// writeServerCert writes a certificate ca signs for 127.0.0.1 and localhost, and
// its key, into dir (owned by cred, which PostgreSQL requires of its key file),
// and returns the settings that make the server use them.
func writeServerCert(dir string, ca *devca.CA, cred *syscall.Credential) ([]string, error) {
	leaf, err := serverLeaf(ca)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	for name, data := range map[string][]byte{certFile: leaf.CertPEM, keyFile: leaf.KeyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return nil, err
		}
		if cred != nil {
			if err := os.Chown(name, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	return []string{"ssl=on", "ssl_cert_file=" + certFile, "ssl_key_file=" + keyFile}, nil
}

// Restart shuts the server down (PostgreSQL's fast shutdown: every session is
// terminated), waits down for downtime, and starts it again on the same port with
// the same data.
func (s *PostgresServer) Restart(ctx context.Context, downtime time.Duration) error {
	s.shutdown(syscall.SIGINT, 30*time.Second)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(downtime):
	}
	s.done = make(chan struct{})
	return s.start(ctx, s.bin, s.cred)
}

// Stop shuts the server down fast and removes its directory.
func (s *PostgresServer) Stop() {
	s.shutdown(syscall.SIGQUIT, 10*time.Second)
	_ = os.RemoveAll(s.dir)
}

// shutdown sends the server a shutdown signal (SIGINT fast, SIGQUIT immediate)
// and waits for it to exit, killing it after wait.
func (s *PostgresServer) shutdown(sig syscall.Signal, wait time.Duration) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(wait):
		s.kill()
	}
}

func (s *PostgresServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// postgresBinDir finds the directory holding initdb and postgres, installing
// PostgreSQL with apt-get when it is missing and that is possible.
func postgresBinDir() (string, error) {
	find := func() string {
		if p, err := exec.LookPath("initdb"); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
				return filepath.Dir(p)
			}
		}
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	if err := aptInstall(func() bool { return find() != "" }, "postgresql"); err != nil {
		return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found: %w", err)
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", errors.New("PostgreSQL was installed but initdb is still not found")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// unprivilegedUser is the user PostgreSQL runs as when we are root (it refuses to
// run as root); nil when we are not root.
func unprivilegedUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither a postgres nor a nobody user exists to run PostgreSQL as")
}
