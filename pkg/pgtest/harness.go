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
	template string // migrated template database (OwnSchema)
	owned    bool   // we started the server (and drop nothing one by one)
	mu       sync.Mutex

	// Templates of the Django schemas, made the first time a test asks for one.
	djangoOnly, django func() (string, error)
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
		env.djangoOnly = sync.OnceValues(env.createDjangoOnlyTemplate)
		env.django = sync.OnceValues(env.createDjangoTemplate)
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

// Schema says how a test database's tables were made.
type Schema int

const (
	// OwnSchema is the service's migrations on an empty database: they create the
	// nomina_* tables themselves.
	OwnSchema Schema = iota
	// DjangoSchema is the payroll application's tables as Django creates them
	// (testdata/django, `manage.py migrate`), then the service's migrations on top:
	// the production situation (docs/database.md).
	DjangoSchema
	// DjangoOnlySchema is Django's tables with none of the service's migrations
	// applied, for tests of the migrations themselves.
	DjangoOnlySchema
	// EmptySchema is a database with nothing in it (a copy of template0), for
	// tests of the migrations on a new database.
	EmptySchema
)

func (s Schema) String() string {
	switch s {
	case OwnSchema:
		return "own"
	case DjangoSchema:
		return "django"
	case DjangoOnlySchema:
		return "django-only"
	case EmptySchema:
		return "empty"
	}
	return fmt.Sprintf("Schema(%d)", int(s))
}

// NewDatabase creates a fresh database with the schema migrated (OwnSchema),
// dropped when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return NewDatabaseWith(t, OwnSchema)
}

// NewDjangoDatabase creates a fresh database whose nomina_* tables Django created,
// with the service's migrations applied on top (DjangoSchema), dropped when the test
// ends, and returns its URL.
func NewDjangoDatabase(t testing.TB) string {
	t.Helper()
	return NewDatabaseWith(t, DjangoSchema)
}

// NewDatabaseWith creates a fresh database of the given schema, dropped when the
// test ends, and returns its URL. Each schema is built once per test binary, in a
// template database the tests' databases are copied from.
func NewDatabaseWith(t testing.TB, s Schema) string {
	t.Helper()
	env, err := sharedPostgres()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	template := env.template
	switch s {
	case OwnSchema:
	case DjangoSchema:
		template, err = env.django()
	case DjangoOnlySchema:
		template, err = env.djangoOnly()
	case EmptySchema:
		template = "template0"
	default:
		err = fmt.Errorf("unknown schema %v", s)
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "pgtest_" + randomSuffix()
	if err := env.copyDatabase(context.Background(), template, name); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	if !env.owned {
		t.Cleanup(func() { dropDatabase(env.adminURL, name) })
	}
	return withDatabase(env.adminURL, name)
}

// copyDatabase creates database name from template.
func (e *postgresEnv) copyDatabase(ctx context.Context, template, name string) error {
	e.mu.Lock() // CREATE DATABASE ... TEMPLATE wants the template to itself
	defer e.mu.Unlock()
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	return err
}

// createDjangoOnlyTemplate makes the DjangoOnlySchema template: an empty database that
// Django's migrate fills.
func (e *postgresEnv) createDjangoOnlyTemplate() (string, error) {
	django, err := localdb.Django()
	if err != nil {
		return "", err
	}
	return e.newTemplate("template0", "pgtest_django_only_", django.Migrate)
}

// createDjangoTemplate makes the DjangoSchema template: a copy of the Django-only
// one with the service's migrations applied.
func (e *postgresEnv) createDjangoTemplate() (string, error) {
	djangoOnly, err := e.djangoOnly()
	if err != nil {
		return "", err
	}
	return e.newTemplate(djangoOnly, "pgtest_django_", func(ctx context.Context, url string) error {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = schema.Migrate(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), pool)
		return err
	})
}

// newTemplate copies from into a new database named prefix+random, dropped when the
// binary ends, and fills it.
func (e *postgresEnv) newTemplate(from, prefix string, fill func(ctx context.Context, url string) error) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := prefix + randomSuffix()
	if err := e.copyDatabase(ctx, from, name); err != nil {
		return "", fmt.Errorf("creating the template database %s: %w", name, err)
	}
	onStop(func() { dropDatabase(e.adminURL, name) })
	if err := fill(ctx, withDatabase(e.adminURL, name)); err != nil {
		return "", fmt.Errorf("filling the template database %s: %w", name, err)
	}
	return name, nil
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
