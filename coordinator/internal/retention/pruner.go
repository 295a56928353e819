// Package retention bounds the growth of the service's own tables and keys: a
// coordinator's Pruner removes the ledger (chunks, attempts), the saved previous
// results and the Redis keys of runs that ended longer ago than the retention
// period, in small batches, keeping the run rows (docs/architecture.md, "Bounded
// growth").
package retention

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/store"
)

// Defaults of Config.
const (
	DefaultRetention = 90 * 24 * time.Hour
	DefaultEvery     = time.Hour
	DefaultBatch     = 1000
	DefaultMaxRuns   = 100
)

// Config configures a Pruner.
type Config struct {
	// Retention is how long after its end a run keeps its ledger, saved rows
	// and keys (LEDGER_RETENTION; default: DefaultRetention, 90 days).
	Retention time.Duration
	// Every is the time between passes, with up to a tenth of jitter so replicas
	// drift apart (LEDGER_PRUNE_EVERY; default: DefaultEvery, 1h).
	Every time.Duration
	// Batch is the most rows one delete, and so one transaction, removes
	// (default: DefaultBatch, 1000).
	Batch int
	// MaxRuns is the most runs one pass prunes; the rest wait for the next
	// (default: DefaultMaxRuns, 100).
	MaxRuns int
}

// keys is what the pruner needs of Redis (progress.RedisStore).
type keys interface {
	DropRun(ctx context.Context, runID int64) error
}

// Pruner prunes old runs periodically. Any number of coordinators may run one:
// a batch takes a transaction-level advisory lock, and a pass that finds it taken
// stops until its next turn.
type Pruner struct {
	logger *slog.Logger
	cfg    Config
	pool   *pgxpool.Pool
	keys   keys
}

// NewPruner builds a Pruner, filling Config's defaults.
func NewPruner(logger *slog.Logger, cfg Config, pool *pgxpool.Pool, k keys) (*Pruner, error) {
	cfg.Retention = cmp.Or(cfg.Retention, DefaultRetention)
	cfg.Every = cmp.Or(cfg.Every, DefaultEvery)
	cfg.Batch = cmp.Or(cfg.Batch, DefaultBatch)
	cfg.MaxRuns = cmp.Or(cfg.MaxRuns, DefaultMaxRuns)
	if cfg.Retention < 0 || cfg.Every < 0 || cfg.Batch < 1 || cfg.MaxRuns < 1 {
		return nil, fmt.Errorf("retention %s, every %s, batch %d, max runs %d: want positive values",
			cfg.Retention, cfg.Every, cfg.Batch, cfg.MaxRuns)
	}
	if pool == nil || k == nil {
		return nil, errors.New("the pruner needs a database pool and a key store")
	}
	return &Pruner{logger: logger, cfg: cfg, pool: pool, keys: k}, nil
}

// Run prunes every cfg.Every until ctx ends. The first pass comes after a
// first interval, not at start, so a fleet restarting together does not prune at once.
func (p *Pruner) Run(ctx context.Context) {
	for {
		wait := p.cfg.Every + rand.N(p.cfg.Every/10+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if _, err := p.Pass(ctx); err != nil && ctx.Err() == nil {
			p.logger.WarnContext(ctx, "pruning old runs", "error", err.Error())
		}
	}
}

// Pass prunes up to cfg.MaxRuns runs that ended more than cfg.Retention ago
// and returns the runs it pruned whole. Another replica pruning is not an error.
func (p *Pruner) Pass(ctx context.Context) ([]int64, error) {
	res, err := store.PruneLedger(ctx, p.pool, store.PruneParams{
		FinishedBefore: time.Now().Add(-p.cfg.Retention), Batch: p.cfg.Batch, MaxRuns: p.cfg.MaxRuns})
	var keyErrs []error
	for _, id := range res.Runs {
		if err := p.keys.DropRun(ctx, id); err != nil {
			keyErrs = append(keyErrs, fmt.Errorf("dropping the keys of consolidation %d: %w", id, err))
		}
	}
	if len(res.Runs) > 0 || err != nil {
		p.logger.InfoContext(ctx, "old runs pruned", "runs", len(res.Runs),
			"attempts", res.Rows["consolidation_chunk_attempt"], "chunks", res.Rows["consolidation_chunk"],
			"previous_results", res.Rows["consolidation_previous_chunk"]+res.Rows["consolidation_previous_result"], "busy", errors.Is(err, store.ErrPruneBusy))
	}
	if errors.Is(err, store.ErrPruneBusy) {
		err = nil
	}
	return res.Runs, errors.Join(append(keyErrs, err)...)
}
