package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nominacl/consolidation/pkg/domain"
)

// RunEnd is how a run ends.
type RunEnd struct {
	Estado         domain.Estado
	Error          string
	RemoveRows     bool // remove every row the run wrote
	Totals         WriteSummary
	TotalsVerified bool
	// Interrupted is an end that comes before the chunks do (a cancel, the time
	// limit, a permanent database error): chunks still pending or running become
	// cancelled (never tried, or their attempt abandoned; not failed). Any other
	// end needs every chunk ended: FinishRun refuses it with ErrChunksOpen while
	// one is pending or running.
	Interrupted bool
}

// ErrChunksOpen means a run was asked to end as if its chunks were all done while
// one is still pending or running; nothing changed.
var ErrChunksOpen = errors.New("the run still has pending or running chunks")

// ErrCancelRequested means a run was asked to end as if its chunks were all done
// after a cancel had been stored (by any replica): it must end cancelled; nothing
// changed.
var ErrCancelRequested = errors.New("the run was cancelled")

var sqlCloseLedger = sqlf(`
UPDATE consolidation_chunk SET attempt_token = NULL,
	status = CASE WHEN status IN ({pending}, {running}) THEN {cancelled} ELSE status END,
	error = CASE WHEN status IN ({pending}, {running}) THEN coalesce(error, $2) ELSE error END
WHERE run_id = $1 AND status <> {succeeded}`)

// sqlCloseAttempts closes the attempts a run's end finds open: in flight when an
// interrupted end came, or left open by a coordinator that died before recording
// how they ended.
var sqlCloseAttempts = sqlf(`
UPDATE consolidation_chunk_attempt SET finished_at = now(), outcome = {abandoned}, error = $2
WHERE run_id = $1 AND finished_at IS NULL`)

// FinishRun ends a run: it removes the run's rows when asked and settles the
// previous rows its chunks replaced or kept (settlePrevious: put back when the
// run's rows are removed, else dropped, with a full run's stale rows), records the final
// estado on the run and the closing, and replaces the closing's metrics row, in one
// transaction guarded by the run still being unfinished, so finishing twice (a
// reconciler and a resumed coordinator, say) changes nothing the second time.
// epoch is the caller's lease epoch: when the run's lease has moved on, nothing
// changes and the error is ErrLeaseLost. An end that is not Interrupted is refused
// with ErrChunksOpen while a chunk is pending or running, and with
// ErrCancelRequested once a cancel is stored (both checked under the run's row
// lock, which dispatches and RequestCancel take too).
func FinishRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, o RunEnd) (bool, error) {
	ended, err := EndRun(ctx, pool, runID, epoch, o)
	return ended.Finished, err
}

// RunEnded is what a call that ends a run did.
type RunEnded struct {
	// Finished: this call ended the run (false: it had ended already).
	Finished bool
	// ClosingID is the run's closing, when Finished.
	ClosingID int64
	// ClosingEstadoFound is the closing's estado found in place of
	// consolidando_datos, left as the application wrote it and recorded on the
	// run (Run.ClosingEstadoFound); "": the closing now has the run's estado.
	ClosingEstadoFound domain.Estado
}

// EndRun is FinishRun, reporting also what the end found of the closing.
//
// Its statements over the result tables (the previous rows settled, a removed
// run's rows deleted) are planned afresh, as CheckControlTotals is: the
// transaction discards the session's plans as it begins.
func EndRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, o RunEnd) (RunEnded, error) {
	var ended RunEnded
	err := pgx.BeginTxFunc(ctx, pool, freshPlansTx, func(tx pgx.Tx) error {
		ended = RunEnded{}
		closed, ok, err := closeRun(ctx, tx, runID, epoch, o)
		if err != nil || !ok {
			return err
		}
		// The rest in one round trip, in this order.
		stmts, err := settlePrevious(ctx, tx, closed.ClosingID, runID, closed.Mode, o.RemoveRows)
		if err != nil {
			return fmt.Errorf("ending consolidation %d: %w", runID, err)
		}
		stmts = append(stmts, batchStmt{"replacing the metrics", sqlDeleteMetrics, []any{runID}},
			batchStmt{"writing the metrics", sqlInsertMetrics, []any{runID, o.RemoveRows, AlgorithmVersion()}})
		if err := execBatch(ctx, tx, stmts...); err != nil {
			return fmt.Errorf("ending consolidation %d: %w", runID, err)
		}
		ended = RunEnded{Finished: true, ClosingID: closed.ClosingID, ClosingEstadoFound: closed.Found}
		return nil
	})
	if err != nil {
		return RunEnded{}, fmt.Errorf("finishing consolidation %d: %w", runID, err)
	}
	return ended, nil
}

// batchStmt is one statement of a batch, and what it does (for its error).
type batchStmt struct {
	what string
	sql  string
	args []any
}

// execBatch runs statements in order in one round trip, in tx. The first to fail
// names the error; the transaction is then aborted and the rest do nothing.
func execBatch(ctx context.Context, tx pgx.Tx, stmts ...batchStmt) error {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	br := tx.SendBatch(ctx, b)
	for _, s := range stmts {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return br.Close()
}

// removeResults is the statements that delete the consolidated employees matching
// match (a condition on nomina_empleado_consolidado e) and their concept rows:
// children first, one set-based DELETE per table, so it needs no ON DELETE
// CASCADE and leaves nothing for a foreign key checked at commit (DEFERRABLE
// INITIALLY DEFERRED, as Django creates them) to refuse. Run them in a
// transaction, so both deletes stand or fall together.
func removeResults(what, match string, args ...any) []batchStmt {
	return []batchStmt{
		{what + ": concept rows", `DELETE FROM nomina_concepto_empleado_consolidado c USING nomina_empleado_consolidado e
		WHERE c.empleado_consolidado_id = e.id AND ` + match, args},
		{what + ": employee rows", "DELETE FROM nomina_empleado_consolidado e WHERE " + match, args},
	}
}

// AbortRun ends a run error_consolidacion with errText when FinishRun itself
// cannot (a permanent database error while removing the run's rows or writing the
// metrics row): it closes the ledger and records the estado and the error on the
// run and the closing, and touches neither the result rows, nor the previous rows
// its chunks saved (left in consolidation_previous_chunk, or
// consolidation_previous_result for chunks an earlier version committed, for an
// operator), nor the metrics row, so nobody waits on a run that can never finish.
// Guarded like FinishRun, epoch included; it is always Interrupted.
func AbortRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, errText string) (bool, error) {
	ended, err := EndAbortedRun(ctx, pool, runID, epoch, errText)
	return ended.Finished, err
}

// EndAbortedRun is AbortRun, reporting also what the end found of the closing.
func EndAbortedRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, errText string) (RunEnded, error) {
	var ended RunEnded
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		closed, ok, err := closeRun(ctx, tx, runID, epoch, RunEnd{Estado: domain.EstadoError, Error: errText, Interrupted: true})
		ended = RunEnded{Finished: ok, ClosingID: closed.ClosingID, ClosingEstadoFound: closed.Found}
		return err
	})
	if err != nil {
		return RunEnded{}, fmt.Errorf("aborting consolidation %d: %w", runID, err)
	}
	return ended, nil
}

var sqlOpenChunks = sqlf(`SELECT EXISTS (SELECT FROM consolidation_chunk
	WHERE run_id = $1 AND status IN ({pending}, {running}))`)

// closedRun is what closeRun found of the run it ended.
type closedRun struct {
	ClosingID int64
	Mode      domain.Mode
	// Found is the closing's estado found in place of consolidando_datos ("":
	// the closing now has the run's estado).
	Found domain.Estado
}

// closeRun locks a run that is still unfinished (ok is false when it has ended),
// checks the caller's lease epoch (ErrLeaseLost) and, unless the end is
// Interrupted, that no cancel was stored (ErrCancelRequested) and no chunk is open
// (ErrChunksOpen); it revokes every attempt token and cancels the unfinished
// chunks, and records the end on the run (with whether its rows are removed) and
// on its closing if the closing is still consolidating. When the application wrote
// another estado mid-run, that estado is left, returned as found and recorded on
// the run (closing_estado_found; docs/rules.md, "The application writing estado
// mid-run"). Its statements go in three round trips: the run locked and its
// chunks looked at (each statement of a batch reads after the one before it, so
// after the lock); the ledger closed, the end recorded and the closing locked;
// the closing's estado or the conflict recorded.
func closeRun(ctx context.Context, tx pgx.Tx, runID, epoch int64, o RunEnd) (closed closedRun, ok bool, err error) {
	var owned, cancelled, open bool
	b := &pgx.Batch{}
	b.Queue(`SELECT cierre_id, mode, lease_epoch = $2, cancel_requested_at IS NOT NULL
		FROM consolidation_run WHERE id = $1 AND finished_at IS NULL FOR UPDATE`, runID, epoch)
	if !o.Interrupted {
		b.Queue(sqlOpenChunks, runID)
	}
	br := tx.SendBatch(ctx, b)
	err = br.QueryRow().Scan(&closed.ClosingID, &closed.Mode, &owned, &cancelled)
	if err == nil && !o.Interrupted {
		err = br.QueryRow().Scan(&open)
	}
	if cerr := br.Close(); cerr != nil && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
		err = cerr
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return closedRun{}, false, nil // already finished
	case err != nil:
		return closedRun{}, false, err
	case !owned:
		return closedRun{}, false, ErrLeaseLost
	case cancelled && !o.Interrupted:
		return closedRun{}, false, ErrCancelRequested
	case open:
		return closedRun{}, false, ErrChunksOpen
	}
	// No attempt may commit from now on, and none is left open. The closing
	// moves only from consolidando_datos: an estado the application wrote
	// meanwhile is kept, and the conflict recorded on the run. The row lock
	// makes the read the latest committed estado.
	b = &pgx.Batch{}
	b.Queue(sqlCloseLedger, runID, "run ended: "+string(o.Estado))
	b.Queue(sqlCloseAttempts, runID, "run ended: "+string(o.Estado))
	b.Queue(`UPDATE consolidation_run SET estado = $2, error = nullif($3, ''), finished_at = now(),
			sum_haberes_cents = $4, sum_descuentos_cents = $5, sum_liquido_cents = $6, totals_verified = $7,
			rows_removed = $8
		WHERE id = $1`, runID, o.Estado, o.Error, int64(o.Totals.TotalHaberes), int64(o.Totals.TotalDescuentos),
		int64(o.Totals.LiquidoPagar), o.TotalsVerified, o.RemoveRows)
	b.Queue("SELECT estado FROM nomina_cierrenomina WHERE id = $1 FOR UPDATE", closed.ClosingID)
	br = tx.SendBatch(ctx, b)
	for range 3 {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	var found domain.Estado
	if err == nil {
		err = br.QueryRow().Scan(&found)
	}
	if cerr := br.Close(); cerr != nil && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
		err = cerr
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows): // the closing is gone
		return closed, true, nil
	case err != nil:
		return closedRun{}, false, err
	case found == domain.EstadoConsolidando:
		if _, err := tx.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1", closed.ClosingID, o.Estado); err != nil {
			return closedRun{}, false, err
		}
		return closed, true, nil
	}
	if _, err := tx.Exec(ctx, "UPDATE consolidation_run SET closing_estado_found = $2 WHERE id = $1", runID, found); err != nil {
		return closedRun{}, false, err
	}
	closed.Found = found
	return closed, true, nil
}
