package pgtest

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/schema"
)

// NewRuntimeRole creates a login role with exactly the service's run-time grants
// (schema.RuntimeGrants) on the migrated database at databaseURL, and returns a
// URL of that database connecting as the role. The role is dropped when the test
// ends.
func NewRuntimeRole(t testing.TB, databaseURL string) string {
	t.Helper()
	ctx := context.Background()
	role, password := "pgtest_runtime_"+randomSuffix(), randomSuffix()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatalf("pgtest: connecting to grant: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+password+"'"); err != nil {
		t.Fatalf("pgtest: creating role: %v", err)
	}
	t.Cleanup(func() {
		// Privileges in this database first (the role cannot be dropped while it
		// holds any), then the role, which belongs to the whole server.
		ctx := context.Background()
		ident := pgx.Identifier{role}.Sanitize()
		if c, err := pgx.Connect(ctx, databaseURL); err == nil {
			_, _ = c.Exec(ctx, "DROP OWNED BY "+ident)
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+ident)
			_ = c.Close(ctx)
		}
	})
	if _, err := conn.Exec(ctx, schema.RuntimeGrants(role)); err != nil {
		t.Fatalf("pgtest: granting the run-time rights: %v", err)
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}
