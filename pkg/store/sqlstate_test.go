package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/store"
)

func TestTransientSQLState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      string
		transient bool
	}{
		{"08000", true}, // connection_exception
		{"08006", true}, // connection_failure
		{"08P01", true}, // protocol_violation: still class 08
		{"40001", true}, // serialization_failure
		{"40P01", true}, // deadlock_detected
		{"40003", true}, // statement_completion_unknown
		{"53000", true}, // insufficient_resources
		{"53100", true}, // disk_full
		{"53200", true}, // out_of_memory
		{"53300", true}, // too_many_connections
		{"55P03", true}, // lock_not_available
		{"57014", true}, // query_canceled (statement_timeout)
		{"57P01", true}, // admin_shutdown (pg_terminate_backend)
		{"57P02", true}, // crash_shutdown
		{"57P03", true}, // cannot_connect_now
		{"25006", true}, // read_only_sql_transaction (after a failover)

		{"40002", false}, // transaction_integrity_constraint_violation
		{"42703", false}, // undefined_column
		{"42P01", false}, // undefined_table
		{"42501", false}, // insufficient_privilege
		{"42601", false}, // syntax_error
		{"22003", false}, // numeric_value_out_of_range
		{"22P02", false}, // invalid_text_representation
		{"23502", false}, // not_null_violation
		{"23503", false}, // foreign_key_violation (a deferred key at commit too)
		{"23505", false}, // unique_violation
		{"23514", false}, // check_violation
		{"55000", false}, // object_not_in_prerequisite_state
		{"55006", false}, // object_in_use
		{"57P04", false}, // database_dropped
		{"P0001", false}, // raise_exception (a trigger)
		{"XX000", false}, // internal_error
		{"", false},
		{"08", false}, // not a SQLSTATE
	} {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.transient, store.TransientSQLState(tc.code))
		})
	}
}

func TestPermanentDBError(t *testing.T) {
	t.Parallel()
	denied := &pgconn.PgError{Code: "42501", Message: "permission denied for table nomina_concepto_empleado_consolidado"}
	t.Run("FoundThroughWrapping", func(t *testing.T) {
		t.Parallel()
		pgErr, ok := store.PermanentDBError(fmt.Errorf("copying: %w", denied))
		require.True(t, ok)
		require.Same(t, denied, pgErr)
	})
	t.Run("TransientIsNot", func(t *testing.T) {
		t.Parallel()
		_, ok := store.PermanentDBError(fmt.Errorf("copying: %w", &pgconn.PgError{Code: "57P01"}))
		require.False(t, ok)
	})
	t.Run("NotReportedByPostgresIsNot", func(t *testing.T) {
		t.Parallel()
		for _, err := range []error{nil, errors.New("connection reset by peer"), context.DeadlineExceeded, store.ErrNotFound} {
			_, ok := store.PermanentDBError(err)
			require.False(t, ok, "%v", err)
		}
	})
}

func TestDescribeDBError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  *pgconn.PgError
		want string
	}{
		{"CodeAndName", &pgconn.PgError{Code: "42501", Message: "permission denied for table secret"},
			"database error 42501 insufficient_privilege"},
		{"TableColumnConstraint", &pgconn.PgError{Code: "23514", Message: "new row violates check constraint",
			Detail: "Failing row contains (12345678-5, Ana Pérez)", TableName: "nomina_concepto_empleado_consolidado",
			ConstraintName: "valor_positivo"},
			"database error 23514 check_violation table nomina_concepto_empleado_consolidado constraint valor_positivo"},
		{"ColumnOfANotNull", &pgconn.PgError{Code: "23502", TableName: "nomina_empleado_consolidado", ColumnName: "fecha_consolidacion"},
			"database error 23502 not_null_violation table nomina_empleado_consolidado column fecha_consolidacion"},
		{"ClassNameWhenTheCodeIsUnnamed", &pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type integer: "12345678-5"`},
			"database error 22P02 data_exception"},
		{"UnknownCodeAlone", &pgconn.PgError{Code: "XX000", Message: "SELECT 1"}, "database error XX000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := store.DescribeDBError(tc.err)
			require.Equal(t, tc.want, got)
			require.NotContains(t, got, "12345678")
		})
	}
}

// TestDataSQLState: the codes a chunk is split on are those its rows can cause;
// a privilege or a missing column fails every chunk alike.
func TestDataSQLState(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		"22003": true,  // numeric_value_out_of_range
		"22021": true,  // character_not_in_repertoire
		"23505": true,  // unique_violation
		"23514": true,  // check_violation
		"54000": true,  // program_limit_exceeded (an index row too large)
		"44000": true,  // with_check_option_violation
		"P0001": true,  // raise_exception (an application trigger's validation)
		"42501": false, // insufficient_privilege
		"42703": false, // undefined_column
		"42P01": false, // undefined_table
		"0A000": false, // feature_not_supported
		"XX000": false, // internal_error
	} {
		require.Equal(t, want, store.DataSQLState(code), code)
	}
}
