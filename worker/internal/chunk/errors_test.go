package chunk

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/store"
)

func TestTypedErrors(t *testing.T) {
	t.Parallel()
	killed := fmt.Errorf("committing chunk 2: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection"})
	overflow := fmt.Errorf("writing rows: %w", &pgconn.PgError{Code: "22003", Message: "numeric field overflow"})
	t.Run("NilStaysNil", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, typed(nil))
	})
	t.Run("PostgresErrorIsADatabaseError", func(t *testing.T) {
		t.Parallel()
		for _, err := range []error{killed, overflow} {
			var dbErr *DatabaseError
			require.ErrorAs(t, typed(err), &dbErr)
			require.Equal(t, err.Error(), dbErr.Error(), "the message is the original one")
			var pgErr *pgconn.PgError
			require.ErrorAs(t, typed(err), &pgErr, "the PostgreSQL error is still inside")
			require.Equal(t, pgErr.Code, dbErr.Code)
		}
	})
	t.Run("DataErrorStaysADataError", func(t *testing.T) {
		t.Parallel()
		err := &DataError{Err: overflow}
		require.Same(t, err, typed(err))
	})
	t.Run("OtherErrorsUnchanged", func(t *testing.T) {
		t.Parallel()
		for _, err := range []error{store.ErrStaleAttempt, store.ErrNotFound, context.DeadlineExceeded, errors.New("connection reset")} {
			require.Equal(t, err, typed(err))
		}
	})
}
