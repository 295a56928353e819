package synth

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// applicationColumns are the columns of a source table that the generator does not
// write but the database requires: in the payroll application's own database
// (created by Django) a table carries columns of its own, NOT NULL, whose
// defaults Django fills in Python, so the database has none. The generator stands
// in for the application and fills them with neutral values, as Django's defaults
// would (” for text, false, 0, now).
type applicationColumns struct {
	names  []string
	values []any
}

// lookupApplicationColumns finds the NOT NULL columns of table without a default
// that are not among written.
func lookupApplicationColumns(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, table string, written []string) (applicationColumns, error) {
	rows, err := q.Query(ctx, `
		SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1
		  AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'
		ORDER BY ordinal_position`, table)
	if err != nil {
		return applicationColumns{}, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	var out applicationColumns
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		if slices.Contains(written, name) {
			return nil
		}
		v, ok := neutralValue(typ)
		if !ok {
			return fmt.Errorf("%s.%s (%s) is NOT NULL without a default and the generator has no value for it", table, name, typ)
		}
		out.names = append(out.names, name)
		out.values = append(out.values, v)
		return nil
	})
	if err != nil {
		return applicationColumns{}, err
	}
	return out, nil
}

func neutralValue(dataType string) (any, bool) {
	switch dataType {
	case "character varying", "character", "text":
		return "", true
	case "boolean":
		return false, true
	case "smallint", "integer", "bigint":
		return int64(0), true
	case "numeric", "double precision", "real":
		return float64(0), true
	case "date", "timestamp with time zone", "timestamp without time zone":
		return time.Now(), true
	case "jsonb", "json":
		return []any{}, true
	default:
		return nil, false
	}
}

// add appends the columns to cols and their values to every row.
func (a applicationColumns) add(cols []string, rs rows) ([]string, rows) {
	if len(a.names) == 0 {
		return cols, rs
	}
	for i := range rs {
		rs[i] = append(rs[i], a.values...)
	}
	return append(slices.Clone(cols), a.names...), rs
}
