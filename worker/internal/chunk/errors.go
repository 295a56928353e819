package chunk

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// DataError is a failure that retrying cannot fix: the chunk's data breaks a rule
// (an amount that does not fit numeric(12,2), a RUT that no longer normalizes).
type DataError struct{ Err error }

func (e *DataError) Error() string { return e.Err.Error() }
func (e *DataError) Unwrap() error { return e.Err }

// DatabaseError is an error PostgreSQL reported while processing a chunk. Its
// SQLSTATE (Code) says whether a retry may help (store.TransientSQLState: a session
// killed, a serialization failure) or not (a privilege, a missing column, a
// constraint the rows break). Only its code and the names store.DescribeDBError
// gives are fit to leave the worker.
type DatabaseError struct {
	Code string
	Err  error
}

func (e *DatabaseError) Error() string { return e.Err.Error() }
func (e *DatabaseError) Unwrap() error { return e.Err }

// typed marks an error PostgreSQL reported as a *DatabaseError, unless it is a
// data error already; every other error is returned as it is.
func typed(err error) error {
	var de *DataError
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &de) || !errors.As(err, &pgErr) {
		return err
	}
	return &DatabaseError{Code: pgErr.Code, Err: err}
}
