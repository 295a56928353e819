package bench

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/synth"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// Month end's order, as users meet it: before each measured closing, the result
// tables are emptied and analyzed (a new database, vacuumed before its first
// closing, has them so) and SmallFirst 133-employee closings are consolidated on
// the same services. A session that plans its statements on nearly empty tables
// with "empty" statistics keeps those plans (docs/benchmarks.md, "Plans made on
// empty tables"); a benchmark that only ever analyzed tables holding rows did
// not see it.

// smallClosings generates the small closings consolidated before each measured
// one, every repeat's: generated before the database is settled, as the measured
// closing is.
func smallClosings(ctx context.Context, pool *pgxpool.Pool, cfg Config, size int) ([][]int64, error) {
	out := make([][]int64, cfg.Repeat)
	for rep := range out {
		for i := range cfg.SmallFirst {
			gen, err := synth.Generate(ctx, pool, synth.Config{Employees: latencyEmployees,
				Seed: uint64(size)*1000 + uint64(rep*cfg.SmallFirst+i+1)})
			if err != nil {
				return nil, err
			}
			out[rep] = append(out[rep], gen.ClosingID)
		}
	}
	return out, nil
}

// emptyResults deletes every closing's result rows and analyzes the emptied
// tables: their statistics then say "empty", as a new database's do.
func emptyResults(ctx context.Context, pool *pgxpool.Pool) error {
	for _, q := range []string{"DELETE FROM nomina_concepto_empleado_consolidado", "DELETE FROM nomina_empleado_consolidado",
		"DELETE FROM consolidation_previous_chunk", "DELETE FROM consolidation_previous_result", sqlSettleResults} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("emptying the result tables: %s: %w", q, err)
		}
	}
	return nil
}

// runSmallFirst consolidates the small closings one after the other, as a client
// would, and prints how long each took.
func runSmallFirst(ctx context.Context, client consolidationv1.ConsolidationServiceClient, closings []int64, out io.Writer) error {
	for _, c := range closings {
		r, err := consolidate(ctx, client, Config{}, c)
		if err != nil {
			return fmt.Errorf("consolidating small closing %d first: %w", c, err)
		}
		fmt.Fprintf(out, "    small closing %d first: %s, %s\n", c, duration(r.Wall), r.Estado)
	}
	return nil
}

// resultSeqScans is how many sequential scans of nomina_empleado_consolidado
// PostgreSQL has counted so far: a closing whose sessions plan its lookups
// (foreign-key checks, the previous-results probe) as index lookups starts none
// but a few, one kept as a scan starts one a concept row. Sessions report their
// counts when idle, at most a second late.
func resultSeqScans(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(seq_scan, 0) FROM pg_stat_user_tables
		WHERE relname = 'nomina_empleado_consolidado'`).Scan(&n)
	return n, err
}
