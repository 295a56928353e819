package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// ExistingConfig measures a closing that already exists, through a coordinator
// that is already running: the old benchmark_consolidacion.py's way, N runs of
// one closing with their mean, median, standard deviation, lowest and highest.
type ExistingConfig struct {
	Coordinator string         // the coordinator's gRPC address
	TLS         grpcx.TLSFiles // none: plaintext (a development coordinator)
	Closing     int64
	Repeat      int
}

// RunExisting consolidates cfg.Closing cfg.Repeat times in a row, each run
// forced (a closing whose results exist needs it) and watched to its end, and
// prints each run's wall time (Consolidate call to the final state seen by the
// watch) and the summary. Every run replaces the closing's results with the
// same figures (R1–R8 are deterministic); measure a copy of a production
// closing, never the closing itself while the application reads it.
func RunExisting(ctx context.Context, cfg ExistingConfig, out io.Writer) error {
	if cfg.Closing <= 0 || cfg.Repeat < 1 {
		return errors.New("a closing id > 0 and at least one repeat are needed")
	}
	conn, err := cfg.TLS.Dial(cfg.Coordinator)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Coordinator, err)
	}
	defer conn.Close()
	client := consolidationv1.NewConsolidationServiceClient(conn)
	var walls []float64
	for i := range cfg.Repeat {
		start := time.Now()
		resp, err := client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: cfg.Closing, Force: true})
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		final, err := watchToEnd(ctx, client, resp.GetConsolidationId())
		if err != nil {
			return fmt.Errorf("run %d (consolidation %d): %w", i+1, resp.GetConsolidationId(), err)
		}
		wall := time.Since(start).Seconds()
		walls = append(walls, wall)
		fmt.Fprintf(out, "run %d: consolidation %d, %s, %d employees, %s\n", i+1, final.GetConsolidationId(),
			final.GetEstado(), final.GetEmployeesConsolidated(), duration(time.Duration(wall*float64(time.Second))))
	}
	s := summaryOf(walls)
	fmt.Fprintf(out, "closing %d, %d runs: mean %s, median %s, stdev %s, min %s, max %s\n", cfg.Closing, len(walls),
		secs(s.Mean), secs(s.Median), secs(s.Stdev), secs(s.Min), secs(s.Max))
	return nil
}

// watchToEnd follows a run until its final state.
func watchToEnd(ctx context.Context, client consolidationv1.ConsolidationServiceClient, runID int64) (*consolidationv1.Consolidation, error) {
	stream, err := client.WatchConsolidation(ctx, &consolidationv1.WatchConsolidationRequest{
		Ref: &consolidationv1.WatchConsolidationRequest_ConsolidationId{ConsolidationId: runID}})
	if err != nil {
		return nil, err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if f := m.GetFinal(); f != nil {
			return f, nil
		}
	}
}

// summary is what the old benchmark printed of its runs.
type summary struct{ Mean, Median, Stdev, Min, Max float64 }

// summaryOf summarizes xs: the sample standard deviation (n-1), 0 for one run.
func summaryOf(xs []float64) summary {
	sp := spreadOf(xs)
	s := summary{Median: sp.Median, Min: sp.Min, Max: sp.Max}
	if len(xs) == 0 {
		return s
	}
	for _, x := range xs {
		s.Mean += x
	}
	s.Mean /= float64(len(xs))
	if len(xs) > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Stdev = math.Sqrt(ss / float64(len(xs)-1))
	}
	return s
}

func secs(x float64) string { return duration(time.Duration(x * float64(time.Second))) }
