package pgtest

import (
	"os"
	"testing"
)

// fuzzDatabaseEnv carries a fuzz target's database to the fuzzing engine's workers.
const fuzzDatabaseEnv = "PGTEST_FUZZ_DATABASE_URL"

// NewFuzzDatabase is NewDatabase for a fuzz target that queries PostgreSQL. Under
// `go test -fuzz` the target runs in worker processes of the fuzzing engine, each
// a fresh copy of the test binary that would start a PostgreSQL of its own (which
// can take longer than the whole fuzzing time); they are started with the
// environment of the process that calls this before f.Fuzz, so the database made
// there is handed to them in PGTEST_FUZZ_DATABASE_URL and they use it instead.
// The database is shared: a target must not depend on what another worker wrote
// (temporary tables are per connection, so they are safe).
func NewFuzzDatabase(f *testing.F) string {
	f.Helper()
	if url := os.Getenv(fuzzDatabaseEnv); url != "" {
		return url
	}
	url := NewDatabase(f)
	f.Setenv(fuzzDatabaseEnv, url)
	return url
}
