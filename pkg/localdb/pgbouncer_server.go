package localdb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a pgbouncer in transaction pooling mode in front of a
// PostgresServer, started in a temporary directory on a free port: the pooler a
// payroll application's database often sits behind (docs/capacity.md, "Through
// a connection pooler").
type PgBouncer struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// PgBouncerConfig is what a test chooses of the pooler.
type PgBouncerConfig struct {
	// PoolSize is the server connections per database and user
	// (default_pool_size); 0 means 20.
	PoolSize int
	// Users may connect besides postgres, without a password (auth_type trust:
	// the server behind decides, and the throwaway server trusts every local
	// user).
	Users []string
}

// StartPgBouncer starts a pgbouncer in transaction pooling mode that serves every
// database of pg, as the user PostgreSQL runs as when we are root (pgbouncer
// refuses to run as root).
func StartPgBouncer(ctx context.Context, pg *PostgresServer, cfg PgBouncerConfig) (*PgBouncer, error) {
	bin, err := pgbouncerBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		return nil, err
	}
	if pg.cred != nil {
		if err := os.Chown(dir, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			return nil, err
		}
	}
	var users strings.Builder
	for _, u := range append([]string{"postgres"}, cfg.Users...) {
		fmt.Fprintf(&users, "%q \"\"\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte(users.String()), 0o644); err != nil {
		return nil, err
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 20
	}
	return startOnFreePort(dir, func(port int) *PgBouncer { return &PgBouncer{dir: dir, port: port} },
		func(b *PgBouncer) error { return b.start(ctx, bin, pg, cfg) })
}

func (b *PgBouncer) start(ctx context.Context, bin string, pg *PostgresServer, cfg PgBouncerConfig) error {
	// server_login_retry 1 s instead of 15: after PostgreSQL restarts, the pooler
	// tries again a second after a refused login, not a quarter of a minute.
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 2000
server_login_retry = 1
logfile = %s
admin_users = postgres
`, pg.port, b.port, filepath.Join(b.dir, "users.txt"), cfg.PoolSize, filepath.Join(b.dir, "pgbouncer.log"))
	path := filepath.Join(b.dir, "pgbouncer.ini")
	if err := os.WriteFile(path, []byte(ini), 0o644); err != nil {
		return err
	}
	b.done = make(chan struct{})
	b.cmd = exec.Command(bin, path)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("starting pgbouncer: %w", err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
			return fmt.Errorf("pgbouncer exited during start: %s", tail(log, 2000))
		default:
		}
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(pingCtx, b.URL("postgres")+"&default_query_exec_mode=simple_protocol")
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			b.Stop()
			return fmt.Errorf("pgbouncer did not accept connections within 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is a connection URL for a database of the server behind, through the pooler.
func (b *PgBouncer) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.port, database)
}

// Transactions is how many transactions the pooler has passed to database so far
// (total_xact_count of its admin console's SHOW STATS).
func (b *PgBouncer) Transactions(ctx context.Context, database string) (int64, error) {
	conn, err := pgx.Connect(ctx, b.URL("pgbouncer")+"&default_query_exec_mode=simple_protocol")
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW STATS")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		row := map[string]string{}
		for i, f := range rows.FieldDescriptions() {
			row[f.Name] = string(rows.RawValues()[i]) // the simple protocol's text
		}
		if row["database"] == database {
			return strconv.ParseInt(row["total_xact_count"], 10, 64)
		}
	}
	return 0, rows.Err()
}

// Stop kills the pooler and removes its directory.
func (b *PgBouncer) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	_ = os.RemoveAll(b.dir)
}

func pgbouncerBinary() (string, error) {
	find := func() string {
		if p, err := exec.LookPath("pgbouncer"); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
			return "/usr/sbin/pgbouncer"
		}
		return ""
	}
	return installed("pgbouncer", find)
}
