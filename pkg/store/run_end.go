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
// previous rows its chunks replaced (settlePrevious: put back when the run's rows
// are removed, else dropped, with a full run's stale rows), records the final
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
func EndRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, o RunEnd) (RunEnded, error) {
	var ended RunEnded
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ended = RunEnded{}
		closingID, found, ok, err := closeRun(ctx, tx, runID, epoch, o)
		if err != nil || !ok {
			return err
		}
		if o.RemoveRows {
			if _, err := removeResults(ctx, tx, "e.cierre_id = $1 AND e.consolidation_run_id = $2", closingID, runID); err != nil {
				return fmt.Errorf("removing the rows of consolidation %d: %w", runID, err)
			}
		}
		if err := settlePrevious(ctx, tx, closingID, runID, o.RemoveRows); err != nil {
			return fmt.Errorf("settling the previous rows of consolidation %d: %w", runID, err)
		}
		if _, err := tx.Exec(ctx, sqlDeleteMetrics, runID); err != nil {
			return fmt.Errorf("replacing the metrics of consolidation %d: %w", runID, err)
		}
		if _, err := tx.Exec(ctx, sqlInsertMetrics, runID, o.RemoveRows, AlgorithmVersion()); err != nil {
			return fmt.Errorf("writing the metrics of consolidation %d: %w", runID, err)
		}
		ended = RunEnded{Finished: true, ClosingID: closingID, ClosingEstadoFound: found}
		return nil
	})
	if err != nil {
		return RunEnded{}, fmt.Errorf("finishing consolidation %d: %w", runID, err)
	}
	return ended, nil
}

// removeResults deletes the consolidated employees matching match (a condition on
// nomina_empleado_consolidado e) and their concept rows: children first, one
// set-based DELETE per table, so it needs no ON DELETE CASCADE and leaves nothing
// for a foreign key checked at commit (DEFERRABLE INITIALLY DEFERRED, as Django
// creates them) to refuse. It returns the employee rows removed. Call it in a
// transaction, so both deletes stand or fall together.
func removeResults(ctx context.Context, tx pgx.Tx, match string, args ...any) (int64, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM nomina_concepto_empleado_consolidado c USING nomina_empleado_consolidado e
		WHERE c.empleado_consolidado_id = e.id AND `+match, args...); err != nil {
		return 0, fmt.Errorf("removing concept rows: %w", err)
	}
	tag, err := tx.Exec(ctx, "DELETE FROM nomina_empleado_consolidado e WHERE "+match, args...)
	if err != nil {
		return 0, fmt.Errorf("removing employee rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

// AbortRun ends a run error_consolidacion with errText when FinishRun itself
// cannot (a permanent database error while removing the run's rows or writing the
// metrics row): it closes the ledger and records the estado and the error on the
// run and the closing, and touches neither the result rows, nor the previous rows
// its chunks saved (left in consolidation_previous_result for an operator), nor the
// metrics row, so nobody waits on a run that can never finish. Guarded like FinishRun, epoch
// included; it is always Interrupted.
func AbortRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, errText string) (bool, error) {
	ended, err := EndAbortedRun(ctx, pool, runID, epoch, errText)
	return ended.Finished, err
}

// EndAbortedRun is AbortRun, reporting also what the end found of the closing.
func EndAbortedRun(ctx context.Context, pool *pgxpool.Pool, runID, epoch int64, errText string) (RunEnded, error) {
	var ended RunEnded
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		ended.ClosingID, ended.ClosingEstadoFound, ended.Finished, err = closeRun(ctx, tx, runID, epoch,
			RunEnd{Estado: domain.EstadoError, Error: errText, Interrupted: true})
		return err
	})
	if err != nil {
		return RunEnded{}, fmt.Errorf("aborting consolidation %d: %w", runID, err)
	}
	return ended, nil
}

var sqlOpenChunks = sqlf(`SELECT EXISTS (SELECT FROM consolidation_chunk
	WHERE run_id = $1 AND status IN ({pending}, {running}))`)

// closeRun locks a run that is still unfinished (ok is false when it has ended),
// checks the caller's lease epoch (ErrLeaseLost) and, unless the end is
// Interrupted, that no cancel was stored (ErrCancelRequested) and no chunk is open
// (ErrChunksOpen); it revokes every attempt token and cancels the unfinished
// chunks, and records the end on the run (with whether its rows are removed) and
// on its closing if the closing is still consolidating. When the application wrote
// another estado mid-run, that estado is left, returned as found and recorded on
// the run (closing_estado_found; docs/rules.md, "The application writing estado
// mid-run").
func closeRun(ctx context.Context, tx pgx.Tx, runID, epoch int64, o RunEnd) (closingID int64, found domain.Estado, ok bool, err error) {
	var owned, cancelled bool
	err = tx.QueryRow(ctx, `SELECT cierre_id, lease_epoch = $2, cancel_requested_at IS NOT NULL
		FROM consolidation_run WHERE id = $1 AND finished_at IS NULL FOR UPDATE`,
		runID, epoch).Scan(&closingID, &owned, &cancelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, nil // already finished
	}
	if err != nil {
		return 0, "", false, err
	}
	if !owned {
		return 0, "", false, ErrLeaseLost
	}
	if cancelled && !o.Interrupted {
		return 0, "", false, ErrCancelRequested
	}
	if !o.Interrupted {
		var open bool
		if err := tx.QueryRow(ctx, sqlOpenChunks, runID).Scan(&open); err != nil {
			return 0, "", false, err
		}
		if open {
			return 0, "", false, ErrChunksOpen
		}
	}
	// No attempt may commit from now on, and none is left open.
	if _, err := tx.Exec(ctx, sqlCloseLedger, runID, "run ended: "+string(o.Estado)); err != nil {
		return 0, "", false, err
	}
	if _, err := tx.Exec(ctx, sqlCloseAttempts, runID, "run ended: "+string(o.Estado)); err != nil {
		return 0, "", false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE consolidation_run SET estado = $2, error = nullif($3, ''), finished_at = now(),
			sum_haberes_cents = $4, sum_descuentos_cents = $5, sum_liquido_cents = $6, totals_verified = $7,
			rows_removed = $8
		WHERE id = $1`, runID, o.Estado, o.Error, int64(o.Totals.TotalHaberes), int64(o.Totals.TotalDescuentos),
		int64(o.Totals.LiquidoPagar), o.TotalsVerified, o.RemoveRows); err != nil {
		return 0, "", false, err
	}
	// The closing moves only from consolidando_datos: an estado the application
	// wrote meanwhile is kept, and the conflict recorded on the run. The row lock
	// makes the read the latest committed estado.
	err = tx.QueryRow(ctx, "SELECT estado FROM nomina_cierrenomina WHERE id = $1 FOR UPDATE", closingID).Scan(&found)
	switch {
	case errors.Is(err, pgx.ErrNoRows): // the closing is gone
		return closingID, "", true, nil
	case err != nil:
		return 0, "", false, err
	case found == domain.EstadoConsolidando:
		if _, err := tx.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1", closingID, o.Estado); err != nil {
			return 0, "", false, err
		}
		return closingID, "", true, nil
	}
	if _, err := tx.Exec(ctx, "UPDATE consolidation_run SET closing_estado_found = $2 WHERE id = $1", runID, found); err != nil {
		return 0, "", false, err
	}
	return closingID, found, true, nil
}
