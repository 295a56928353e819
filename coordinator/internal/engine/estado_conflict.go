package engine

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// estadoConflicts reports a run whose end found the closing's estado written by
// the application mid-run (docs/rules.md, "The application writing estado
// mid-run"): the store keeps the application's estado and records the one found
// on the run; this logs it (ids and estados only) and counts it, once, by the
// call that ended the run.
type estadoConflicts struct {
	logger  *slog.Logger
	counter metric.Int64Counter
}

func newEstadoConflicts(logger *slog.Logger) (*estadoConflicts, error) {
	c, err := otel.Meter("consolidation/coordinator").Int64Counter("consolidation_closing_estado_conflicts",
		metric.WithDescription("Runs whose end found the closing's estado changed by the application mid-run (kept; the run's estado is in the ledger), by the estado found"))
	if err != nil {
		return nil, err
	}
	return &estadoConflicts{logger: logger, counter: c}, nil
}

// report logs and counts the conflict an end found, if any.
func (c *estadoConflicts) report(ctx context.Context, runID int64, estado domain.Estado, ended store.RunEnded) {
	if c == nil || !ended.Finished || ended.ClosingEstadoFound == "" {
		return
	}
	c.logger.WarnContext(ctx, "closing estado changed by the application during the run; kept, the run's estado is in the ledger",
		"consolidation_id", runID, "closing_id", ended.ClosingID, "estado", estado, "closing_estado_found", ended.ClosingEstadoFound)
	c.counter.Add(ctx, 1, metric.WithAttributes(attribute.String("estado_found", string(ended.ClosingEstadoFound))))
}
