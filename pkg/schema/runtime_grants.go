package schema

import (
	_ "embed"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed runtime_grants.sql
var runtimeGrants string

// RuntimeGrants is the SQL that gives role exactly the rights the service needs at
// run time (SPEC section 3a): SELECT on the sources, SELECT, INSERT and DELETE on the
// result tables, UPDATE of estado on nomina_cierrenomina, and full rights on its own
// tables and functions. Run it after Migrate, as the tables' owner.
func RuntimeGrants(role string) string {
	return strings.ReplaceAll(runtimeGrants, "{{role}}", pgx.Identifier{role}.Sanitize())
}
