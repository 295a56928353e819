package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestLogLinesAreRedacted(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger := slog.New(redactHandler{slog.NewJSONHandler(&out, nil)}).With("url", "redis://:s3cret@redis:6379/0")
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax: "Ana Pérez"`, TableName: "t"}
	logger.Error("failed", "error", fmt.Errorf("reading: %w", pgErr).Error(), "cause", fmt.Errorf("x: %w", pgErr),
		slog.Group("db", "dsn", "host=db password=s3cret"), "other", errors.New("postgres://u:s3cret@h/db"))
	line := out.String()
	for _, leak := range []string{"s3cret", "Ana", "invalid input"} {
		require.NotContains(t, line, leak)
	}
	require.Contains(t, line, `"error":"reading: database error 22P02"`)
	require.Contains(t, line, `"cause":"x: database error 22P02 table t"`)
	require.Contains(t, line, `"url":"redis://:xxxxx@redis:6379/0"`)
}
