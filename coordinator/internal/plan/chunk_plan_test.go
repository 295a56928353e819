package plan_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/plan"
	"github.com/nominacl/consolidation/pkg/domain"
)

func employees(n int) []plan.Employee {
	out := make([]plan.Employee, n)
	for i := range out {
		out[i] = plan.Employee{ID: int64(1000 + 3*i), Concepts: 24}
	}
	return out
}

// requireCovers checks every employee is in exactly one chunk, in order.
func requireCovers(t *testing.T, emps []plan.Employee, p plan.ChunkPlan) {
	t.Helper()
	pos := 0
	for i, c := range p.Chunks {
		require.Equal(t, i, c.Index)
		require.Positive(t, c.Employees)
		require.Equal(t, emps[pos].ID, c.FirstID, "chunk %d first id", i)
		pos += c.Employees
		require.Equal(t, emps[pos-1].ID, c.LastID, "chunk %d last id", i)
	}
	require.Equal(t, len(emps), pos, "employees covered")
}

func sizesOf(p plan.ChunkPlan) []int {
	var out []int
	for _, c := range p.Chunks {
		out = append(out, c.Employees)
	}
	return out
}

func repeat(size, times int, rest ...int) []int {
	var out []int
	for range times {
		out = append(out, size)
	}
	return append(out, rest...)
}

func TestSeedPolicy(t *testing.T) {
	t.Parallel()

	tests := []struct {
		n         int
		chunkSize int
		sizes     []int
	}{
		{0, 0, nil},
		{1, 1, []int{1}},
		{50, 50, []int{50}},
		{51, 25, []int{17, 17, 17}},
		{100, 25, []int{25, 25, 25, 25}},
		{101, 26, []int{26, 26, 26, 23}},
		{133, 34, []int{34, 34, 34, 31}},
		{200, 50, []int{50, 50, 50, 50}},
		{201, 50, []int{41, 41, 41, 41, 37}},
		{301, 51, []int{51, 51, 51, 51, 51, 46}},
		{500, 84, repeat(84, 5, 80)},
		{501, 100, repeat(84, 5, 81)},
		{801, 101, repeat(101, 7, 94)},
		{1_200, 150, repeat(150, 8)},
		{1_201, 150, repeat(134, 8, 129)},
		{100_000, 150, repeat(150, 666, 100)},
	}
	for _, tt := range tests {
		emps := employees(tt.n)
		p, err := plan.NewChunkPlan(domain.PolicySeed, emps, 0)
		require.NoError(t, err)
		require.Equal(t, tt.chunkSize, p.ChunkSize, "n=%d chunk size", tt.n)
		require.Equal(t, tt.sizes, sizesOf(p), "n=%d sizes", tt.n)
		requireCovers(t, emps, p)
	}
}

// TestSeedPolicyPlansAsManyChunksAsItsDivisor: where the size rule divides the
// closing (n/4, n/6, n/8 above their floors), it plans exactly that many chunks,
// never one more for a remainder (docs/lifecycle.md#chunk-plan).
func TestSeedPolicyPlansAsManyChunksAsItsDivisor(t *testing.T) {
	t.Parallel()

	for _, r := range []struct{ from, to, chunks int }{{101, 200, 4}, {301, 500, 6}, {801, 1_200, 8}} {
		for n := r.from; n <= r.to; n++ {
			require.Len(t, plan.BalancedSizes(n, plan.SeedSize(n)), r.chunks, "n=%d", n)
		}
	}
}

func TestSizeOverride(t *testing.T) {
	t.Parallel()

	emps := employees(133)
	p, err := plan.NewChunkPlan(domain.PolicySeed, emps, 67)
	require.NoError(t, err)
	require.Equal(t, 67, p.ChunkSize)
	require.Equal(t, []int{67, 66}, sizesOf(p))
	requireCovers(t, emps, p)

	p, err = plan.NewChunkPlan(domain.PolicySeed, emps, 1000)
	require.NoError(t, err)
	require.Equal(t, []int{133}, sizesOf(p))

	p, err = plan.NewChunkPlan(domain.PolicyCostWeighted, emps, 10)
	require.NoError(t, err)
	require.Len(t, p.Chunks, 14)
	requireCovers(t, emps, p)
}

func TestCostWeightedPolicy(t *testing.T) {
	t.Parallel()

	for _, n := range []int{0, 1, 50, 51, 133, 200, 201, 500, 501, 100_000} {
		emps := employees(n)
		// Make the first tenth of the closing heavy: many concepts, discrepancies
		// and movements.
		for i := range n / 10 {
			emps[i] = plan.Employee{ID: emps[i].ID, Concepts: 80, Discrepancies: 4, Movements: 3}
		}
		p, err := plan.NewChunkPlan(domain.PolicyCostWeighted, emps, 0)
		require.NoError(t, err)
		requireCovers(t, emps, p)
		seed, err := plan.NewChunkPlan(domain.PolicySeed, emps, 0)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Chunks), len(seed.Chunks), "n=%d", n)
		if len(p.Chunks) < 2 {
			continue
		}
		total := 0.0
		for _, c := range p.Chunks {
			total += c.Weight
		}
		target := total / float64(len(p.Chunks))
		maxWeight := 1 + 0.1*80 + 0.5*4 + 0.3*3
		for _, c := range p.Chunks {
			require.InDelta(t, target, c.Weight, maxWeight+1e-9, "n=%d chunk %d weight", n, c.Index)
		}
		if n >= 500 {
			// Heavy employees are packed into smaller chunks than light ones.
			require.Less(t, p.Chunks[0].Employees, p.Chunks[len(p.Chunks)-1].Employees)
		}
	}
}

func TestWeight(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 1+2.4+1+0.9, plan.Employee{Concepts: 24, Discrepancies: 2, Movements: 3}.Weight(), 1e-9)
}

func TestRefusesUnsortedOrUnknown(t *testing.T) {
	t.Parallel()
	_, err := plan.NewChunkPlan(domain.PolicySeed, []plan.Employee{{ID: 2}, {ID: 1}}, 0)
	require.Error(t, err)
	_, err = plan.NewChunkPlan("fastest", employees(3), 0)
	require.Error(t, err)
	_, err = domain.ParsePolicy("fastest")
	require.Error(t, err)
	p, err := domain.ParsePolicy("")
	require.NoError(t, err)
	require.Equal(t, domain.DefaultPolicy, p)
}
