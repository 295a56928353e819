package schema

import (
	_ "embed"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed runtime_grants.sql
var runtimeGrants string

// RuntimeGrants is the SQL that gives role exactly the rights the service needs at
// run time, on the tables it reads or writes and no other: SELECT on the sources it
// reads, UPDATE of estado on nomina_cierrenomina, SELECT, INSERT and DELETE on the
// result tables, SELECT, INSERT, UPDATE and DELETE on its own tables, EXECUTE on
// its function. Run it after Migrate, as the tables' owner. `coordinator grants
// -role NAME` prints it; README's block is it for the role consolidation
// (TestREADMEShowsTheRuntimeGrants).
func RuntimeGrants(role string) string {
	return strings.ReplaceAll(runtimeGrants, "{{role}}", pgx.Identifier{role}.Sanitize())
}
