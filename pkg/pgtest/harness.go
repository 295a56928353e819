// Package pgtest is the test harness: it starts a throwaway PostgreSQL and a
// throwaway Redis (pkg/localdb), once per test binary and only when a test asks
// for them, gives each test its own migrated database and its own Redis key space, and
// tears everything down when the binary ends.
//
// TEST_DATABASE_URL and TEST_REDIS_URL point it at existing servers instead; it then
// still creates (and drops) its own databases and never touches another.
//
// A package that uses it declares
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/localdb"
	"github.com/nominacl/consolidation/pkg/schema"
)

// Main runs the tests of a package and then stops every server this package started.
func Main(m *testing.M) int {
	code := m.Run()
	stopAll()
	return code
}

var (
	stopMu    sync.Mutex
	stopFuncs []func()
)

func onStop(f func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stopFuncs = append(stopFuncs, f)
}

func stopAll() {
	stopMu.Lock()
	defer stopMu.Unlock()
	for i := len(stopFuncs) - 1; i >= 0; i-- {
		stopFuncs[i]()
	}
	stopFuncs = nil
}

// postgresEnv is the shared PostgreSQL of this test binary.
type postgresEnv struct {
	adminURL string // a database we may connect to for CREATE DATABASE
	template string // migrated template database
	owned    bool   // we started the server (and drop nothing one by one)
	mu       sync.Mutex
}

var (
	pgOnce sync.Once
	pgEnv  *postgresEnv
	pgErr  error
)

func sharedPostgres() (*postgresEnv, error) {
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		env := &postgresEnv{}
		if url := os.Getenv("TEST_DATABASE_URL"); url != "" {
			env.adminURL = url
		} else {
			srv, err := localdb.StartPostgres(ctx)
			if err != nil {
				pgErr = err
				return
			}
			onStop(srv.Stop)
			env.adminURL = srv.URL("postgres")
			env.owned = true
		}
		env.template = "pgtest_template_" + randomSuffix()
		if err := env.createTemplate(ctx); err != nil {
			pgErr = err
			return
		}
		pgEnv = env
	})
	return pgEnv, pgErr
}

func (e *postgresEnv) createTemplate(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return fmt.Errorf("connecting to the test server: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.template}.Sanitize()); err != nil {
		return fmt.Errorf("creating the template database: %w", err)
	}
	template := e.template
	onStop(func() { dropDatabase(e.adminURL, template) })
	pool, err := pgxpool.New(ctx, withDatabase(e.adminURL, e.template))
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := schema.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), pool); err != nil {
		return fmt.Errorf("migrating the template database: %w", err)
	}
	return nil
}

// NewDatabase creates a fresh database with the schema migrated, dropped when the
// test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	env, err := sharedPostgres()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "pgtest_" + randomSuffix()
	ctx := context.Background()
	env.mu.Lock() // CREATE DATABASE ... TEMPLATE wants the template to itself
	err = func() error {
		admin, err := pgx.Connect(ctx, env.adminURL)
		if err != nil {
			return err
		}
		defer admin.Close(ctx)
		_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{env.template}.Sanitize()))
		return err
	}()
	env.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	if !env.owned {
		t.Cleanup(func() { dropDatabase(env.adminURL, name) })
	}
	return withDatabase(env.adminURL, name)
}

// NewPool opens a pool on a fresh database (NewDatabase), closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return OpenPool(t, NewDatabase(t))
}

// OpenPool opens a pool on url, closed when the test ends. A test that failed
// while holding a connection (rows left open by a failed assertion) must not hang
// the whole binary, so the close is waited for a few seconds only.
func OpenPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pgtest: opening pool: %v", err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			pool.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Logf("pgtest: pool still has connections in use after the test; not waiting for them")
		}
	})
	return pool
}

// AdminURL is a URL on the shared test server that may create databases.
func AdminURL(t testing.TB) string {
	t.Helper()
	env, err := sharedPostgres()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return env.adminURL
}

func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer admin.Close(ctx)
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// withDatabase replaces the database of a connection URL.
func withDatabase(rawURL, database string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Path = "/" + database
	return u.String()
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
