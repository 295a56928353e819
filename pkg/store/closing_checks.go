package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BadRUT is a libro or novedades row whose RUT does not normalize.
type BadRUT struct {
	Table string
	RowID int64
	Raw   string
}

// RepeatedRUT is a canonical RUT held by two or more rows of one source.
type RepeatedRUT struct {
	Table  string
	RUT    string
	RowIDs []int64
}

// RUTProblems is what CheckRUTs finds: at most limit examples of each kind, and how
// many there are in all.
type RUTProblems struct {
	Bad           []BadRUT
	BadCount      int
	Repeated      []RepeatedRUT
	RepeatedCount int
}

// OK reports whether the closing's RUTs are all valid and unique per source.
func (p RUTProblems) OK() bool { return p.BadCount == 0 && p.RepeatedCount == 0 }

var rutSources = []string{"nomina_empleado_cierre", "nomina_empleado_cierre_novedades"}

// CheckRUTs looks for libro and novedades rows of a closing whose RUT does not
// normalize (R1) or normalizes to a RUT another row of the same source has.
func CheckRUTs(ctx context.Context, q Querier, closingID int64, limit int) (RUTProblems, error) {
	// The four queries go in one batch: one round trip before every start.
	var p RUTProblems
	b := &pgx.Batch{}
	for _, table := range rutSources {
		b.Queue(fmt.Sprintf(`
			SELECT id, rut, count(*) OVER ()
			FROM %s WHERE cierre_id = $1 AND nomina_rut_canonical(rut) IS NULL
			ORDER BY id LIMIT $2`, table), closingID, limit).Query(func(rows pgx.Rows) error {
			tableTotal := 0
			for rows.Next() {
				bad := BadRUT{Table: table}
				if err := rows.Scan(&bad.RowID, &bad.Raw, &tableTotal); err != nil {
					return err
				}
				p.Bad = append(p.Bad, bad)
			}
			p.BadCount += tableTotal
			return rows.Err()
		})
		b.Queue(fmt.Sprintf(`
			SELECT canon, ids, count(*) OVER ()
			FROM (SELECT nomina_rut_canonical(rut) AS canon, array_agg(id ORDER BY id) AS ids
			      FROM %s WHERE cierre_id = $1 AND nomina_rut_canonical(rut) IS NOT NULL
			      GROUP BY 1 HAVING count(*) > 1) d
			ORDER BY ids[1] LIMIT $2`, table), closingID, limit).Query(func(rows pgx.Rows) error {
			tableTotal := 0
			for rows.Next() {
				r := RepeatedRUT{Table: table}
				if err := rows.Scan(&r.RUT, &r.RowIDs, &tableTotal); err != nil {
					return err
				}
				p.Repeated = append(p.Repeated, r)
			}
			p.RepeatedCount += tableTotal
			return rows.Err()
		})
	}
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return RUTProblems{}, fmt.Errorf("checking the RUTs of closing %d: %w", closingID, err)
	}
	p.Bad = p.Bad[:min(len(p.Bad), limit)]
	p.Repeated = p.Repeated[:min(len(p.Repeated), limit)]
	return p, nil
}
