package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nominacl/consolidation/pkg/money"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// list prints the run history, newest first, following the pages until -limit
// runs are printed.
func list(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newCallFlags("list")
	closing := fs.Int64("closing", 0, "only the runs of this closing")
	estado := fs.String("estado", "", "only the runs in this estado (e.g. consolidacion_parcial)")
	since := fs.String("since", "", "only the runs started at or after this time (RFC 3339)")
	until := fs.String("until", "", "only the runs started before this time (RFC 3339)")
	limit := fs.Int("limit", 50, "at most this many runs")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *limit <= 0 {
		return usageErrorf("-limit must be > 0")
	}
	req := &consolidationv1.ListConsolidationsRequest{ClosingId: *closing, Estado: *estado}
	for _, t := range []struct {
		flag, v string
		dst     **timestamppb.Timestamp
	}{{"-since", *since, &req.StartedAfter}, {"-until", *until, &req.StartedBefore}} {
		if t.v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return usageErrorf("%s %q: want an RFC 3339 time, e.g. 2026-03-31T00:00:00Z", t.flag, t.v)
		}
		*t.dst = timestamppb.New(at)
	}
	client, closeConn, err := fs.conn.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	// The text is a table, aligned when written; -json prints each run as it comes.
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	printed := 0
	for printed < *limit {
		req.PageSize = int32(min(*limit-printed, 500))
		resp, err := client.ListConsolidations(ctx, req)
		if err != nil {
			return err
		}
		for _, c := range resp.GetConsolidations() {
			printed++
			err := fs.out.print(stdout, c, func(io.Writer) {
				if printed == 1 { // the header, over the first row: an empty list says so instead
					fmt.Fprintln(w, "RUN\tCLOSING\tESTADO\tSTARTED\tFINISHED\tEMPLOYEES\tLÍQUIDO\tREQUESTED BY")
				}
				finished := "-"
				if c.GetFinishedAt() != nil {
					finished = c.GetFinishedAt().AsTime().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s/%s\t%s\t%s\n", c.GetConsolidationId(), c.GetClosingId(), c.GetEstado(),
					c.GetStartedAt().AsTime().Format(time.RFC3339), finished, count(c.GetEmployeesConsolidated()), count(c.GetTotalEmployees()),
					money.Cents(c.GetControlTotals().GetLiquidoPagarCents()).CLP(), c.GetRequestedBy())
			})
			if err != nil {
				return err
			}
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if printed == 0 && !fs.out.isJSON() {
		fmt.Fprintln(stdout, "no consolidation matches")
	}
	return nil
}
