package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The floors of docs/benchmarks.md: the closing's own result rows dumped,
// deleted, and timed while they are copied back. floor copies them in one
// stream (one connection, one transaction, both tables): the least time this
// PostgreSQL needs to take these rows at all. parallelFloor copies them in as
// many streams as the workers write with (each its own connection and
// transaction, a share of the employees and their concepts): the physical limit
// of a parallel writer on this machine.

// floor times the one-stream copy; it returns the time, the rows copied and the
// autovacuum passes that ran meanwhile.
func floor(ctx context.Context, pool *pgxpool.Pool, closing int64) (time.Duration, int64, int64, error) {
	parts, err := dumpResults(ctx, pool, closing, 1)
	if err != nil {
		return 0, 0, 0, err
	}
	avBefore, err := autovacuumPasses(ctx, pool)
	if err != nil {
		return 0, 0, 0, err
	}
	took, rows, err := copyBack(ctx, pool, parts)
	if err != nil {
		return 0, 0, 0, err
	}
	avAfter, err := autovacuumPasses(ctx, pool)
	if err != nil {
		return 0, 0, 0, err
	}
	return took, rows, avAfter - avBefore, nil
}

// parallelFloor times the copy in streams concurrent streams.
func parallelFloor(ctx context.Context, pool *pgxpool.Pool, closing int64, streams int) (time.Duration, error) {
	parts, err := dumpResults(ctx, pool, closing, streams)
	if err != nil {
		return 0, err
	}
	took, _, err := copyBack(ctx, pool, parts)
	return took, err
}

// resultPart is one stream's rows: employees and their concepts, binary COPY.
type resultPart struct{ employees, concepts bytes.Buffer }

// dumpResults dumps the closing's result rows in n parts (by employee row id
// modulo n), deletes them, and settles the tables (vacuum, analyze, checkpoint)
// so the copy starts with nothing pending.
func dumpResults(ctx context.Context, pool *pgxpool.Pool, closing int64, n int) ([]*resultPart, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	// A previous floor left the tables' statistics at "empty" (VACUUM after the
	// delete); without fresh ones the dump below may be planned as a nested loop
	// over two scans.
	if _, err := conn.Exec(ctx, "ANALYZE nomina_empleado_consolidado, nomina_concepto_empleado_consolidado"); err != nil {
		return nil, err
	}
	parts := make([]*resultPart, n)
	for i := range parts {
		parts[i] = &resultPart{}
		if _, err := pg.CopyTo(ctx, &parts[i].employees, fmt.Sprintf(
			"COPY (SELECT * FROM nomina_empleado_consolidado WHERE cierre_id = %d AND id %% %d = %d) TO STDOUT (FORMAT binary)",
			closing, n, i)); err != nil {
			return nil, err
		}
		if _, err := pg.CopyTo(ctx, &parts[i].concepts, fmt.Sprintf(`COPY (SELECT c.* FROM nomina_concepto_empleado_consolidado c
			JOIN nomina_empleado_consolidado e ON e.id = c.empleado_consolidado_id
			WHERE e.cierre_id = %d AND e.id %% %d = %d) TO STDOUT (FORMAT binary)`, closing, n, i)); err != nil {
			return nil, err
		}
	}
	if err := deleteResults(ctx, conn, closing); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, sqlSettleResults); err != nil {
		return nil, err
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	return parts, err
}

// copyBack copies each part in its own connection and transaction, all at once,
// and returns the time until the last commit and the rows copied.
func copyBack(ctx context.Context, pool *pgxpool.Pool, parts []*resultPart) (time.Duration, int64, error) {
	conns := make([]*pgxpool.Conn, len(parts))
	for i := range conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return 0, 0, err
		}
		defer c.Release()
		conns[i] = c
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		rows int64
		errs []error
	)
	start := time.Now()
	for i, part := range parts {
		wg.Go(func() {
			n, err := copyPart(ctx, conns[i], part)
			mu.Lock()
			defer mu.Unlock()
			rows += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if len(errs) > 0 {
		return 0, 0, errs[0]
	}
	return took, rows, nil
}

func copyPart(ctx context.Context, conn *pgxpool.Conn, part *resultPart) (int64, error) {
	pg := conn.Conn().PgConn()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	a, err := pg.CopyFrom(ctx, &part.employees, "COPY nomina_empleado_consolidado FROM STDIN (FORMAT binary)")
	if err != nil {
		return 0, err
	}
	b, err := pg.CopyFrom(ctx, &part.concepts, "COPY nomina_concepto_empleado_consolidado FROM STDIN (FORMAT binary)")
	if err != nil {
		return 0, err
	}
	return a.RowsAffected() + b.RowsAffected(), tx.Commit(ctx)
}
