package engine

import (
	"context"
	"errors"

	"github.com/nominacl/consolidation/pkg/store"
)

// ExportBatch is how many consolidated employees Export hands over at a time.
const ExportBatch = 500

// Export hands a closing's consolidated rows, with their concept rows, to send in
// batches of at most ExportBatch, in RUT order. Each batch is one read (no
// connection is held while send waits on a slow caller). It is refused while a run
// of the closing is in progress, whose rows are changing, and fails the same way
// (FAILED_PRECONDITION, ReasonRowsChanging) when a run started while it read. It logs ids and counts only.
func (e *Engine) Export(ctx context.Context, closingID int64, send func([]store.StoredRecord) error) error {
	if closingID <= 0 {
		return InvalidArgument("closing_id", "closing_id must be > 0")
	}
	if _, err := e.closings.GetClosing(ctx, closingID); errors.Is(err, store.ErrNotFound) {
		return closingNotFound(closingID, "closing %d does not exist", closingID)
	} else if err != nil {
		return err
	}
	latest, err := e.quietLatestRun(ctx, closingID)
	if err != nil {
		return err
	}
	rows, after := 0, ""
	for {
		page, err := e.records.ReadStoredRecords(ctx, closingID, after, ExportBatch)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		if err := send(page); err != nil {
			return err
		}
		rows += len(page)
		after = page[len(page)-1].RUT
	}
	if now, err := e.quietLatestRun(ctx, closingID); err != nil {
		return err
	} else if now != latest {
		return failedPrecondition(ReasonRowsChanging, ids(closingID, now), PreconditionViolation{Type: ViolationEstado,
			Subject: subject("consolidation_run", now)}, "consolidation %d of closing %d started while its rows were exported; export again when it ends", now, closingID)
	}
	e.logger.InfoContext(ctx, "consolidation exported", "closing_id", closingID, "employees", rows)
	return nil
}

// quietLatestRun is the closing's latest run (0: none), refusing while one is in
// progress.
func (e *Engine) quietLatestRun(ctx context.Context, closingID int64) (int64, error) {
	if id, ok, err := e.ledger.ActiveRun(ctx, closingID); err != nil {
		return 0, err
	} else if ok {
		return 0, failedPrecondition(ReasonRowsChanging, ids(closingID, id), PreconditionViolation{Type: ViolationEstado,
			Subject: subject("consolidation_run", id)}, "closing %d has consolidation %d in progress: its rows are changing; export when it ends", closingID, id)
	}
	id, err := e.ledger.LatestRunID(ctx, closingID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return id, err
}
