package engine

import (
	"strconv"

	"github.com/nominacl/consolidation/coordinator/internal/plan"
)

// checkChunkSize refuses a requested chunk_size outside 0..plan.MaxChunkSize,
// before anything is read.
func checkChunkSize(size int) error {
	if size < 0 || size > plan.MaxChunkSize {
		return InvalidArgument("chunk_size", "chunk_size %d is out of range: 0 (the policy's size) or 1..%d",
			size, plan.MaxChunkSize)
	}
	return nil
}

// checkPlanBounds refuses a plan of more than plan.MaxChunksPerRun chunks: a
// chunk_size too small for the closing (naming the smallest that fits), or a
// closing no chunk size fits. The policies' own sizes always fit (plan.PolicySize).
func checkPlanBounds(closingID int64, employees, size int) error {
	if employees > plan.MaxEmployees {
		md := ids(closingID, 0)
		md["employees"], md["max_employees"] = strconv.Itoa(employees), strconv.Itoa(plan.MaxEmployees)
		return failedPrecondition(ReasonClosingTooLarge, md,
			PreconditionViolation{Type: ViolationTooLarge, Subject: subject("nomina_cierrenomina", closingID)},
			"closing %d has %d employees, more than the %d one consolidation can plan (%d chunks of at most %d)",
			closingID, employees, plan.MaxEmployees, plan.MaxChunksPerRun, plan.MaxChunkSize)
	}
	if least := plan.MinChunkSize(employees); size > 0 && size < least {
		return InvalidArgument("chunk_size", "chunk_size %d would split closing %d's %d employees into more than %d chunks; the smallest chunk_size for this closing is %d",
			size, closingID, employees, plan.MaxChunksPerRun, least)
	}
	return nil
}
