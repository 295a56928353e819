package server

import (
	"testing"

	"github.com/stretchr/testify/require"

	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// TestAuditOfCountsTheRowsOfEmployeeData: an audit line names the closing and
// run a call read and how many rows of employee data its answer held: a
// GetConsolidation's failed employees, one explained employee, the runs listed;
// a refused call (no answer) holds none.
func TestAuditOfCountsTheRowsOfEmployeeData(t *testing.T) {
	t.Parallel()
	run := &consolidationv1.Consolidation{ConsolidationId: 7, ClosingId: 3,
		FailedEmployees: []*consolidationv1.FailedEmployee{{}, {}, {}}}
	for name, tc := range map[string]struct {
		req, resp any
		want      audited
	}{
		"GetWithFailedEmployees": {&consolidationv1.GetConsolidationRequest{},
			&consolidationv1.GetConsolidationResponse{Consolidation: run}, audited{closingID: 3, runID: 7, rows: 3}},
		"GetRefused": {&consolidationv1.GetConsolidationRequest{}, nil, audited{}},
		"Explain": {&consolidationv1.ExplainEmployeeRequest{ClosingId: 3},
			&consolidationv1.ExplainEmployeeResponse{Stored: &consolidationv1.ConsolidatedEmployee{ConsolidationId: 7}},
			audited{closingID: 3, runID: 7, rows: 1}},
		"ExplainRefused": {&consolidationv1.ExplainEmployeeRequest{ClosingId: 3}, (*consolidationv1.ExplainEmployeeResponse)(nil),
			audited{closingID: 3}},
		"List": {&consolidationv1.ListConsolidationsRequest{ClosingId: 3},
			&consolidationv1.ListConsolidationsResponse{Consolidations: []*consolidationv1.Consolidation{run, run}},
			audited{closingID: 3, rows: 2}},
		"Consolidate": {&consolidationv1.ConsolidateRequest{ClosingId: 3},
			&consolidationv1.ConsolidateResponse{ConsolidationId: 7}, audited{closingID: 3, runID: 7}},
		"CancelByClosing": {&consolidationv1.CancelConsolidationRequest{Ref: &consolidationv1.CancelConsolidationRequest_ClosingId{ClosingId: 3}},
			&consolidationv1.CancelConsolidationResponse{Consolidation: run}, audited{closingID: 3, runID: 7}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, auditOf(tc.req, tc.resp))
		})
	}
}
