package plan_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/plan"
	"github.com/nominacl/consolidation/pkg/domain"
)

func TestPolicySizeStaysWithinBounds(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 500, 10_000, 100_000, 1_000_000, 1_500_000, 1_500_001, 2_000_000,
		9_999_999, 25_000_001, plan.MaxEmployees - 1, plan.MaxEmployees} {
		size := plan.PolicySize(n)
		require.NoError(t, plan.CheckSize(n, 0), "n=%d", n)
		require.LessOrEqual(t, size, plan.MaxChunkSize, "n=%d", n)
		require.LessOrEqual(t, len(plan.BalancedSizes(n, size)), plan.MaxChunksPerRun, "n=%d", n)
		if n <= 1_500_000 {
			require.Equal(t, plan.SeedSize(n), size, "n=%d: the old Celery design's rule is kept where it fits", n)
		}
	}
	require.Equal(t, 150, plan.PolicySize(1_000_000))
	require.Equal(t, 6_667, len(plan.BalancedSizes(1_000_000, 150)))
	require.Equal(t, 201, plan.PolicySize(2_000_001))
}

// TestLargeClosingPlansWithinBounds builds real plans of 2,000,000 employees, where
// the old Celery design's 150 alone would give 13,334 chunks, streaming the employees through a
// Builder as the engine does.
func TestLargeClosingPlansWithinBounds(t *testing.T) {
	t.Parallel()
	const n = 2_000_000
	for _, policy := range []domain.Policy{domain.PolicySeed, domain.PolicyCostWeighted} {
		b, err := plan.NewBuilder(policy, n, float64(n)*3.4, 0)
		require.NoError(t, err)
		for i := range n {
			require.NoError(t, b.Add(plan.Employee{ID: int64(i + 1), Concepts: 24}))
		}
		p, err := b.Plan()
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Chunks), plan.MaxChunksPerRun, "%s", policy)
		require.Greater(t, len(p.Chunks), plan.MaxChunksPerRun*9/10, "%s", policy)
		require.Equal(t, int64(n), p.Chunks[len(p.Chunks)-1].LastID)
	}
}

func TestCheckSizeRefusesOutsideBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		n, size int
		ok      bool
	}{
		{"PolicySize", 1_000_000, 0, true},
		{"OneOnASmallClosing", 10_000, 1, true},
		{"OneBeyondThePlanBound", 10_001, 1, false},
		{"SmallestThatFits", 10_001, 2, true},
		{"MaxChunkSize", 100, plan.MaxChunkSize, true},
		{"AboveMaxChunkSize", 100, plan.MaxChunkSize + 1, false},
		{"Int32Max", 100, 1<<31 - 1, false},
		{"Negative", 100, -1, false},
		{"ClosingTooLarge", plan.MaxEmployees + 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := plan.CheckSize(tt.n, tt.size)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			_, err = plan.NewBuilder(domain.PolicySeed, tt.n, float64(tt.n), tt.size)
			require.Error(t, err, "the builder refuses what CheckSize refuses")
		})
	}
	require.Equal(t, 2, plan.MinChunkSize(10_001))
	require.Equal(t, 1, plan.MinChunkSize(1))
}
