package store

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nominacl/consolidation/pkg/redact"
)

// transientSQLStates are the SQLSTATEs (a whole class by its two characters, or one
// code) that may go away on their own: the connection or the server went away, a
// serialization failure or deadlock, resources ran short, a lock could not be had,
// a statement was cancelled (statement_timeout), the server is read-only for now
// (a failover). The names are PostgreSQL's condition names.
var transientSQLStates = map[string]string{
	"08":    "connection_exception",
	"40001": "serialization_failure",
	"40003": "statement_completion_unknown",
	"40P01": "deadlock_detected",
	"53":    "insufficient_resources",
	"55P03": "lock_not_available",
	"57014": "query_canceled",
	"57P01": "admin_shutdown",
	"57P02": "crash_shutdown",
	"57P03": "cannot_connect_now",
	"25006": "read_only_sql_transaction",
}

// permanentSQLStates name the permanent conditions the service is most likely to
// meet in the payroll application's database; every SQLSTATE not in
// transientSQLStates is permanent whether it is named here or not.
var permanentSQLStates = map[string]string{
	"22":    "data_exception",
	"22003": "numeric_value_out_of_range",
	"23":    "integrity_constraint_violation",
	"23502": "not_null_violation",
	"23503": "foreign_key_violation",
	"23505": "unique_violation",
	"23514": "check_violation",
	"42":    "syntax_error_or_access_rule_violation",
	"42501": "insufficient_privilege",
	"42703": "undefined_column",
	"42P01": "undefined_table",
	"42883": "undefined_function",
}

// TransientSQLState reports whether an error PostgreSQL reported with SQLSTATE code
// may succeed when tried again (see transientSQLStates). Every other code is
// permanent: a missing column or table, a privilege not granted, data the table
// refuses, a constraint; retrying cannot fix those, so the work fails at once.
func TransientSQLState(code string) bool {
	if len(code) != 5 {
		return false
	}
	_, byCode := transientSQLStates[code]
	_, byClass := transientSQLStates[code[:2]]
	return byCode || byClass
}

// DataSQLState reports whether a permanent SQLSTATE may be the rows' doing: a data
// exception (class 22: a value out of range, a bad encoding), an integrity
// constraint the rows break (23), a limit a value exceeds (54: an index row too
// large), a view's check option (44), or an exception a trigger raises (P0: the
// application's own validation). A chunk failing with one is split to find the
// employee whose rows cause it; any other permanent code (a privilege, a missing
// column) would fail every chunk alike.
func DataSQLState(code string) bool {
	for _, class := range []string{"22", "23", "54", "44", "P0"} {
		if strings.HasPrefix(code, class) {
			return true
		}
	}
	return false
}

// PermanentDBError returns the PostgreSQL error inside err when PostgreSQL
// reported one whose SQLSTATE is permanent. Errors PostgreSQL did not report (a
// connection refused or reset, a timeout) are not permanent.
func PermanentDBError(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || TransientSQLState(pgErr.Code) {
		return nil, false
	}
	return pgErr, true
}

// DescribeDBError says what PostgreSQL reported in words fit to leave the
// process: "database error " + the SQLSTATE, its condition name when known, and
// the table, column and constraint the error names. Never the message or the
// detail, which may quote SQL or the row's values.
func DescribeDBError(e *pgconn.PgError) string {
	return redact.PgError(e, conditionName(e.Code))
}

// conditionName is the name of a SQLSTATE, or of its class, when the tables above
// know it; "" otherwise.
func conditionName(code string) string {
	for _, key := range []string{code, code[:min(2, len(code))]} {
		if name, ok := transientSQLStates[key]; ok {
			return name
		}
		if name, ok := permanentSQLStates[key]; ok {
			return name
		}
	}
	return ""
}
