package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/coordinator/internal/plan"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// check is a dry run of consolidate (Consolidate with validate_only): every
// refusal a real start would give, or the plan of the run it would start.
func check(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newCallFlags("check")
	closing := fs.Int64("closing", 0, "closing id to check")
	startReq := addStartFlags(fs.FlagSet)
	chunks := fs.Bool("chunks", false, "print every planned chunk")
	if err := fs.parse(args); err != nil {
		return err
	}
	req, err := startReq(*closing)
	if err != nil {
		return usageErrorf("%v", err)
	}
	req.ValidateOnly = true
	client, closeConn, err := fs.conn.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.Consolidate(ctx, req)
	if err != nil {
		return err
	}
	return fs.out.print(stdout, resp, func(w io.Writer) {
		p, _ := domainpb.PolicyFromProto(resp.GetChunkPolicy())
		fmt.Fprintf(w, "closing %d (estado %s) may be consolidated; nothing was started\n", resp.GetClosingId(), resp.GetEstado())
		fmt.Fprintf(w, "  plan          %d employees in %d chunks (policy %s, size %d)\n", resp.GetTotalEmployees(),
			resp.GetTotalChunks(), p, resp.GetChunkSize())
		fmt.Fprintf(w, "  novedades     %d without a libro employee (ignored)\n", resp.GetUnmatchedNovedades())
		if *chunks {
			for _, c := range resp.GetPlannedChunks() {
				fmt.Fprintf(w, "  chunk %-6d  employees %d..%d (%d)\n", c.GetChunkIndex(), c.GetFirstEmployeeId(),
					c.GetLastEmployeeId(), c.GetEmployees())
			}
		}
	})
}

// addStartFlags adds the flags that shape a Consolidate request (-policy,
// -chunk-size, -force, -retry-failed) and returns what builds the request from
// them once parsed.
func addStartFlags(fs *flag.FlagSet) func(closing int64) (*consolidationv1.ConsolidateRequest, error) {
	policy := fs.String("policy", "", "chunk policy: seed or cost_weighted (default: the service's)")
	size := fs.Int("chunk-size", 0, "override the policy's chunk size: 1..5000 employees (0: the policy's)")
	force := fs.Bool("force", false, "consolidate again a closing already in datos_consolidados")
	retry := fs.Bool("retry-failed", false, "process only the employees that failed in the last run")
	return func(closing int64) (*consolidationv1.ConsolidateRequest, error) {
		if closing <= 0 {
			return nil, errors.New("-closing N is required")
		}
		if *size < 0 || *size > plan.MaxChunkSize {
			return nil, fmt.Errorf("-chunk-size %d: want 1..%d employees, or 0 for the policy's size", *size, plan.MaxChunkSize)
		}
		req := &consolidationv1.ConsolidateRequest{ClosingId: closing, ChunkSize: int32(*size), Force: *force}
		if *policy != "" {
			p, err := domain.ParsePolicy(*policy)
			if err != nil {
				return nil, fmt.Errorf("-policy %q: want seed or cost_weighted", *policy)
			}
			req.ChunkPolicy = domainpb.PolicyToProto(p)
		}
		if *retry {
			req.Mode = consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED
		}
		return req, nil
	}
}
