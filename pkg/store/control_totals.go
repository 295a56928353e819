package store

import (
	"cmp"
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// ControlTotals are a run's sums as the ledger has them and as the written rows
// have them.
type ControlTotals struct {
	Ledger  WriteSummary
	Written WriteSummary
}

// Agree reports whether the ledger and the written rows agree.
func (c ControlTotals) Agree() bool { return c.Ledger == c.Written }

// controlTotals adds up, in one statement (one round trip at the run's end),
// the run $1's succeeded chunks in the ledger and the rows the run wrote for
// the employees that match share (a condition on e, the employee rows).
func controlTotals(share string) string {
	return sqlf(`
SELECT l.employees, l.records, l.haberes, l.descuentos, l.liquido,
       w.employees, w.records, w.haberes, w.descuentos, w.liquido
FROM (SELECT coalesce(sum(employees), 0) AS employees, coalesce(sum(records), 0) AS records,
             coalesce(sum(sum_haberes_cents), 0)::bigint AS haberes,
             coalesce(sum(sum_descuentos_cents), 0)::bigint AS descuentos,
             coalesce(sum(sum_liquido_cents), 0)::bigint AS liquido
      FROM consolidation_chunk WHERE run_id = $1 AND status = {succeeded}) l,
     (` + writtenTotals(share) + `) w`)
}

// writtenTotals adds up the rows the run $1 wrote for the employees that match
// share.
func writtenTotals(share string) string {
	return `SELECT count(*) AS employees, count(*) + coalesce(sum(n.lines), 0) AS records,
             coalesce(sum(e.total_haberes) * 100, 0)::bigint AS haberes,
             coalesce(sum(e.total_descuentos) * 100, 0)::bigint AS descuentos,
             coalesce(sum(e.liquido_pagar) * 100, 0)::bigint AS liquido
      FROM consolidation_run r
      JOIN nomina_empleado_consolidado e ON e.cierre_id = r.cierre_id AND e.consolidation_run_id = r.id
      LEFT JOIN LATERAL (SELECT count(*) AS lines FROM nomina_concepto_empleado_consolidado c
                         WHERE c.empleado_consolidado_id = e.id) n ON true
      WHERE r.id = $1 AND ` + share
}

// medianEmployee is the median of the first libro employee ids of the run $1's
// chunks (0 when it has none): where the two halves of a split check meet.
const medianEmployee = `coalesce((SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY first_employee_id)
	FROM consolidation_chunk WHERE run_id = $1), 0)`

var (
	sqlControlTotals = controlTotals("true")
	// The two halves of a split check: the employees before the median, with
	// the ledger's sums, and the rest. Every row is in exactly one of them,
	// whatever the median is.
	sqlControlTotalsFirstHalf  = controlTotals("e.empleado_origen_id < " + medianEmployee)
	sqlWrittenTotalsSecondHalf = sqlf(writtenTotals("e.empleado_origen_id >= " + medianEmployee))
)

// SplitControlTotalsFrom is the number of employees from which a run's control
// totals are added up in two halves at once: the check reads every row the run
// wrote (0.5-0.7 s at 100,000 employees on one backend), alone on the run's
// path between its last chunk and its end (docs/benchmarks.md, "The serial
// steps of a large closing").
const SplitControlTotalsFrom = 20000

// CheckControlTotals adds up a run's succeeded chunks in the ledger and the rows the
// run wrote, so a run is only marked consolidated when both agree to the cent.
// With split, the written rows are added up in two halves (by libro employee
// id, cut at the median of the run's chunks) by two statements sent at once, so
// q must then take statements at once from two goroutines: a pool.
//
// It discards the session's plans first, in the same round trip: the statement
// runs once a run, on a coordinator session that may have run it many times
// while the result tables were nearly empty (the small closings before a big
// one, in a new database), and PostgreSQL then keeps a generic plan made for a
// page or two of rows — counting each employee's concept rows with a scan of the
// whole concept table, once per employee: hours at 100,000 employees. Planned
// afresh, it counts them through the index (docs/benchmarks.md, "Plans made on
// empty tables").
func CheckControlTotals(ctx context.Context, q Querier, runID int64, split bool) (ControlTotals, error) {
	var t ControlTotals
	first := sqlControlTotals
	var second WriteSummary
	var secondErr error
	var wg sync.WaitGroup
	if split {
		first = sqlControlTotalsFirstHalf
		wg.Go(func() {
			b := freshPlansBatch()
			b.Queue(sqlWrittenTotalsSecondHalf, runID).QueryRow(func(row pgx.Row) error {
				return row.Scan(&second.Employees, &second.Records, &second.TotalHaberes, &second.TotalDescuentos, &second.LiquidoPagar)
			})
			secondErr = q.SendBatch(ctx, b).Close()
		})
	}
	b := freshPlansBatch()
	b.Queue(first, runID).QueryRow(func(row pgx.Row) error {
		return row.Scan(&t.Ledger.Employees, &t.Ledger.Records, &t.Ledger.TotalHaberes, &t.Ledger.TotalDescuentos, &t.Ledger.LiquidoPagar,
			&t.Written.Employees, &t.Written.Records, &t.Written.TotalHaberes, &t.Written.TotalDescuentos, &t.Written.LiquidoPagar)
	})
	err := q.SendBatch(ctx, b).Close()
	wg.Wait()
	if err := cmp.Or(err, secondErr); err != nil {
		return ControlTotals{}, fmt.Errorf("adding up the ledger and the rows of consolidation %d: %w", runID, err)
	}
	t.Written = t.Written.plus(second)
	return t, nil
}

// ClosingTotals adds up a closing's consolidated rows as they are now, whichever
// run wrote them (after a retry_failed run: its rows and those of the run it
// retried). Records is left 0: the employee rows are enough to total.
func ClosingTotals(ctx context.Context, q Querier, closingID int64) (WriteSummary, error) {
	var t WriteSummary
	err := q.QueryRow(ctx, `SELECT count(*), coalesce(sum(total_haberes) * 100, 0)::bigint,
		       coalesce(sum(total_descuentos) * 100, 0)::bigint, coalesce(sum(liquido_pagar) * 100, 0)::bigint
		FROM nomina_empleado_consolidado WHERE cierre_id = $1`, closingID).
		Scan(&t.Employees, &t.TotalHaberes, &t.TotalDescuentos, &t.LiquidoPagar)
	if err != nil {
		return t, fmt.Errorf("adding up the rows of closing %d: %w", closingID, err)
	}
	return t, nil
}
