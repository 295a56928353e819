// Package storetest holds what tests read from a store and production never
// does. It is linked into no shipped binary (coordinator/cmd's dependency test).
package storetest

import (
	"cmp"
	"context"
	"slices"

	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
)

// ReadResults reads a closing's consolidated records back, sorted by RUT, with
// their lines sorted by code: the form the rules produce, so a run's output can be
// compared with the rules applied in one process. It reads with the export's
// reader (store.ReadStoredRecords), a page at a time.
func ReadResults(ctx context.Context, q store.Querier, closingID int64) ([]rules.Consolidated, error) {
	const page = 1000
	var out []rules.Consolidated
	after := ""
	for {
		recs, err := store.ReadStoredRecords(ctx, q, closingID, after, page)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			out = append(out, r.Consolidated)
		}
		if len(recs) < page {
			break
		}
		after = recs[len(recs)-1].RUT
	}
	// Sort in Go: the database's collation may order text differently.
	slices.SortFunc(out, func(a, b rules.Consolidated) int { return cmp.Compare(a.RUT, b.RUT) })
	for i := range out {
		slices.SortFunc(out[i].Lines, func(a, b rules.ConceptLine) int { return cmp.Compare(a.Code, b.Code) })
	}
	return out, nil
}
