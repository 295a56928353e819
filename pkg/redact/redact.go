// Package redact keeps secrets and personal data out of text bound for a log line,
// a span or an error: the passwords of connection URLs and DSNs, and the messages
// of PostgreSQL errors, which may quote a value of a row (a RUT, a name, an
// amount). What is left names things (the SQLSTATE, a table, a column, a
// constraint), never values.
package redact

import (
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Mask replaces a secret.
const Mask = "xxxxx"

var (
	// userinfo of a URL: scheme://user:password@ (the password may hold anything
	// but '@' and white space; a URL that failed to parse is masked too).
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^\s@]*@`)
	// password=... in a key=value DSN or a query string (?password=..., &sslpassword=...).
	kvPassword = regexp.MustCompile(`(?i)((?:ssl)?password=)('[^']*'|[^\s&]+)`)
	// pgconn.PgError's text: "SEVERITY: message (SQLSTATE XXXXX)"; the message may
	// quote values.
	pgMessage = regexp.MustCompile(`\p{Lu}+: [^\n]*? \(SQLSTATE ([0-9A-Z]{5})\)`)
)

// Text masks, in s, the passwords of URLs and key=value DSNs and replaces
// PostgreSQL error messages by their SQLSTATE.
func Text(s string) string {
	if strings.Contains(s, "://") {
		s = urlPassword.ReplaceAllString(s, "${1}"+Mask+"@")
	}
	if strings.Contains(strings.ToLower(s), "password=") {
		s = kvPassword.ReplaceAllString(s, "${1}"+Mask)
	}
	if strings.Contains(s, "(SQLSTATE ") {
		s = pgMessage.ReplaceAllString(s, "database error $1")
	}
	return s
}

// Error is err's text fit for a log line or a span: a PostgreSQL error in its
// chain reads as PgError gives it (SQLSTATE and names), the rest as Text.
func Error(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		s = strings.ReplaceAll(s, pgErr.Error(), PgError(pgErr, ""))
	}
	return Text(s)
}

// PgError describes a PostgreSQL error by its SQLSTATE, the condition's name when
// the caller knows it (store.DescribeDBError), and the names the error carries
// (table, column, constraint); never its message or detail, which may quote
// values or SQL.
func PgError(e *pgconn.PgError, condition string) string {
	var b strings.Builder
	b.WriteString("database error ")
	b.WriteString(e.Code)
	if condition != "" {
		b.WriteString(" " + condition)
	}
	for _, part := range []struct{ what, name string }{
		{"table", e.TableName}, {"column", e.ColumnName}, {"constraint", e.ConstraintName},
	} {
		if part.name != "" {
			b.WriteString(" " + part.what + " " + part.name)
		}
	}
	return b.String()
}

// Err is err with its text made safe by Error, for an error that goes on to a
// log line or a caller; errors.Is and errors.As still see the original.
func Err(err error) error {
	if err == nil {
		return nil
	}
	return &safeError{text: Error(err), err: err}
}

type safeError struct {
	text string
	err  error
}

func (e *safeError) Error() string { return e.text }
func (e *safeError) Unwrap() error { return e.err }
