package bench

// A closing consolidated through the API as a client does: Consolidate, then
// WatchConsolidation to the final message.

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/coordinator/internal/readload"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

func consolidate(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config, closing int64) (Result, error) {
	return consolidateThen(ctx, client, cfg, closing, func() {})
}

// rerun consolidates a closing whose results exist again, forced: its previous
// results stay readable until the run's own replace them (docs/lifecycle.md).
func rerun(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config, closing int64) (Result, error) {
	return watchRun(ctx, client, cfg, &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: int32(cfg.ChunkSize),
		ChunkPolicy: domainpb.PolicyToProto(cfg.Policy), Force: true}, func() {})
}

// changeLibro adds 1 to every libro concept value of a closing, so a re-run
// finds every employee's result changed (Config.RerunChanged), and vacuums and
// analyzes the table it changed.
func changeLibro(ctx context.Context, pool *pgxpool.Pool, closing int64) error {
	if _, err := pool.Exec(ctx, `UPDATE nomina_registro_concepto_empleado r SET valor = r.valor + 1
		FROM nomina_empleado_cierre e WHERE r.empleado_id = e.id AND e.cierre_id = $1`, closing); err != nil {
		return fmt.Errorf("changing the libro of closing %d: %w", closing, err)
	}
	_, err := pool.Exec(ctx, "VACUUM (ANALYZE) nomina_registro_concepto_empleado")
	return err
}

// readLoadGrace is how long the read load's calls in progress when the run
// ends may take to finish before they are cut short (and not counted).
const readLoadGrace = 30 * time.Second

// consolidateRetries counts the Consolidate calls retried after UNAVAILABLE.
var consolidateRetries atomic.Int64

// consolidateThen is consolidate calling started once Consolidate has returned
// (whether it succeeded or not).
func consolidateThen(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config, closing int64,
	started func()) (Result, error) {
	return watchRun(ctx, client, cfg, &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: int32(cfg.ChunkSize),
		ChunkPolicy: domainpb.PolicyToProto(cfg.Policy)}, started)
}

// watchRun starts a run, calls started once Consolidate has returned, and
// watches the run to its end: its wall is from the call to the final message.
func watchRun(ctx context.Context, client consolidationv1.ConsolidationServiceClient, cfg Config,
	req *consolidationv1.ConsolidateRequest, started func()) (r Result, err error) {
	tabs := 0
	if cfg.dashboardAddr != "" {
		tabs = cfg.DashboardTabs
	}
	if cfg.DashboardBrowser != "" && cfg.browser == nil {
		tabs = 0 // a real browser's tabs watch the measured closings only
	}
	start := time.Now()
	resp, err := client.Consolidate(ctx, req)
	// A refusal UNAVAILABLE (a dependency check timed out on a loaded machine) is
	// retried, as callers do; the wall still counts from the first call.
	for try := 1; status.Code(err) == codes.Unavailable && try <= 20; try++ {
		consolidateRetries.Add(1)
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(time.Duration(min(try, 10)) * 200 * time.Millisecond):
		}
		resp, err = client.Consolidate(ctx, req)
	}
	answered := time.Now()
	started()
	if err != nil {
		return Result{}, err
	}
	if tabs > 0 && cfg.browser != nil {
		closeTabs := cfg.browser.openTabs(ctx, cfg.dashboardAddr, tabs, resp.GetConsolidationId())
		defer func() {
			if err != nil {
				closeTabs(time.Now())
				return
			}
			// The tabs must have received the run live and shown its end: a
			// figure of idle tabs would say nothing.
			if r.TabsSeen, err = closeTabs(r.Ended); err != nil {
				err = fmt.Errorf("dashboard tabs of consolidation %d: %w", resp.GetConsolidationId(), err)
			}
		}()
	} else if tabs > 0 {
		closeTabs := openTabs(ctx, cfg.dashboardAddr, tabs, resp.GetConsolidationId())
		defer func() {
			if err := closeTabs(); err != nil {
				fmt.Fprintf(os.Stderr, "dashboard tabs of consolidation %d: %v\n", resp.GetConsolidationId(), err)
			}
		}()
	}
	var load *readload.Load
	if cfg.readLoad != nil {
		load = readload.Start(ctx, *cfg.readLoad, readload.Run{ID: resp.GetConsolidationId(), Closing: req.GetClosingId(),
			Chunks: resp.GetTotalChunks()})
		defer func() {
			if load != nil {
				load.Stop(readLoadGrace)
			}
		}()
	}
	stream, err := client.WatchConsolidation(ctx, &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: resp.GetConsolidationId()}})
	if err != nil {
		return Result{}, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return Result{}, fmt.Errorf("watching consolidation %d: %w", resp.GetConsolidationId(), err)
		}
		if f := msg.GetFinal(); f != nil {
			end := time.Now()
			r = Result{Wall: end.Sub(start), Chunks: int(f.GetTotalChunks()), Records: f.GetRecordsCreated(),
				Estado: f.GetEstado(), RunID: resp.GetConsolidationId(), Called: start, Answered: answered, Ended: end, Tabs: tabs}
			if load != nil {
				counts := load.Stop(readLoadGrace)
				r.Load, load = &counts, nil
			}
			return r, nil
		}
	}
}
