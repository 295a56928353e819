package redact

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"URLPassword", "dial postgres://app:pw@db:5432/payroll failed", "dial postgres://app:xxxxx@db:5432/payroll failed"},
		{"RedisPasswordOnly", `parse "redis://:s3cret@host:bad/0": invalid port`, `parse "redis://:xxxxx@host:bad/0": invalid port`},
		{"PasswordWithOddCharacters", "rediss://u:p:a/ss#w@h/0", "rediss://u:xxxxx@h/0"},
		{"URLWithoutPasswordKept", "postgres://app@db/payroll and https://collector:4318", "postgres://app@db/payroll and https://collector:4318"},
		{"KeyValuePassword", "host=db user=app password=s3cret dbname=x", "host=db user=app password=xxxxx dbname=x"},
		{"QuotedKeyValuePassword", "password='a b' host=db", "password=xxxxx host=db"},
		{"QueryPassword", "postgres://db/x?user=app&password=s3cret&sslmode=verify-full", "postgres://db/x?user=app&password=xxxxx&sslmode=verify-full"},
		{"SSLPassword", "sslpassword=k3y", "sslpassword=xxxxx"},
		{"PostgreSQLMessage", `committing: ERROR: invalid input syntax for type integer: "12.345.678-5" (SQLSTATE 22P02)`,
			"committing: database error 22P02"},
		{"NothingToRedact", "chunk 3 of consolidation 9 failed", "chunk 3 of consolidation 9 failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, Text(tc.in))
		})
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: `duplicate key value: Ana Pérez`,
		Detail: "Key (rut)=(12345678-5) already exists.", TableName: "nomina_empleado_consolidado",
		ConstraintName: "nomina_empleado_consolidado_cierre_id_rut_key"}
	err := fmt.Errorf("chunk 4 of consolidation 2: %w", pgErr)
	want := "chunk 4 of consolidation 2: database error 23505 table nomina_empleado_consolidado constraint nomina_empleado_consolidado_cierre_id_rut_key"
	require.Equal(t, want, Error(err))
	safe := Err(err)
	require.Equal(t, want, safe.Error())
	var back *pgconn.PgError
	require.True(t, errors.As(safe, &back), "the PostgreSQL error is still in the chain")
	require.Nil(t, Err(nil))
	require.Equal(t, "", Error(nil))
}
