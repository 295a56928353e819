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
}

var sqlCloseLedger = sqlf(`
UPDATE consolidation_chunk SET attempt_token = NULL,
	status = CASE WHEN status IN ({pending}, {running}) THEN {failed} ELSE status END,
	error = CASE WHEN status IN ({pending}, {running}) THEN coalesce(error, $2) ELSE error END
WHERE run_id = $1 AND status <> {succeeded}`)

// FinishRun ends a run: it removes the run's rows when asked, records the final
// estado on the run and the closing, and replaces the closing's metrics row, in one
// transaction guarded by the run still being unfinished, so finishing twice (a
// reconciler and a resumed coordinator, say) changes nothing the second time.
func FinishRun(ctx context.Context, pool *pgxpool.Pool, runID int64, o RunEnd) (bool, error) {
	finished := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var closingID int64
		err := tx.QueryRow(ctx, "SELECT cierre_id FROM consolidation_run WHERE id = $1 AND finished_at IS NULL FOR UPDATE", runID).Scan(&closingID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // already finished
		}
		if err != nil {
			return err
		}
		// No attempt may commit from now on.
		if _, err := tx.Exec(ctx, sqlCloseLedger, runID, "run ended: "+string(o.Estado)); err != nil {
			return err
		}
		if o.RemoveRows {
			if _, err := tx.Exec(ctx, "DELETE FROM nomina_empleado_consolidado WHERE cierre_id = $1 AND consolidation_run_id = $2", closingID, runID); err != nil {
				return fmt.Errorf("removing the rows of consolidation %d: %w", runID, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE consolidation_run SET estado = $2, error = nullif($3, ''), finished_at = now(),
				sum_haberes_cents = $4, sum_descuentos_cents = $5, sum_liquido_cents = $6, totals_verified = $7
			WHERE id = $1`, runID, o.Estado, o.Error, int64(o.Totals.TotalHaberes), int64(o.Totals.TotalDescuentos),
			int64(o.Totals.LiquidoPagar), o.TotalsVerified); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1 AND estado = $3",
			closingID, o.Estado, domain.EstadoConsolidando); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlUpsertMetrics, runID, o.RemoveRows); err != nil {
			return fmt.Errorf("writing the metrics of consolidation %d: %w", runID, err)
		}
		finished = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("finishing consolidation %d: %w", runID, err)
	}
	return finished, nil
}

// sqlUpsertMetrics writes the closing's metrics row from the run and its ledger.
// ClearPreviousResults removes a closing's consolidated rows written by any run
// but this one (seed: limpiar_datos_consolidacion_previos). Idempotent.
func ClearPreviousResults(ctx context.Context, q Querier, closingID, runID int64) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM nomina_empleado_consolidado
		WHERE cierre_id = $1 AND consolidation_run_id IS DISTINCT FROM $2`, closingID, runID)
	if err != nil {
		return 0, fmt.Errorf("clearing previous results of closing %d: %w", closingID, err)
	}
	return tag.RowsAffected(), nil
}
