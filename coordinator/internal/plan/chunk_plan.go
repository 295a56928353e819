// Package plan splits a closing's employees into chunks (docs/lifecycle.md#chunk-plan). Every
// policy cuts the employees, in id order, into contiguous runs, so a chunk is
// described by its first and last employee id and no message or ledger row grows
// with the closing.
package plan

import (
	"fmt"
	"math"

	"github.com/nominacl/consolidation/pkg/domain"
)

// Employee is what planning needs to know of one libro employee.
type Employee struct {
	ID            int64
	Concepts      int // libro concept lines
	Discrepancies int // open discrepancies of the closing naming this employee
	Movements     int // movement rows of the employee's RUT
}

// Weight is the old Celery design's complexity estimate: 1 + 0.1·concepts + 0.5·discrepancies +
// 0.3·movements.
func (e Employee) Weight() float64 {
	return 1 + 0.1*float64(e.Concepts) + 0.5*float64(e.Discrepancies) + 0.3*float64(e.Movements)
}

// Chunk is a contiguous run of employees in id order.
type Chunk struct {
	Index     int
	FirstID   int64
	LastID    int64
	Employees int
	Weight    float64
}

// ChunkPlan is the chunks of one run and the size they were planned with.
type ChunkPlan struct {
	Policy    domain.Policy
	ChunkSize int // the size rule's result (or the override) before balancing
	Chunks    []Chunk
}

// NewChunkPlan plans employees (sorted by id) with a policy. sizeOverride > 0
// replaces the policy's size (PolicySize); CheckSize bounds both.
func NewChunkPlan(policy domain.Policy, employees []Employee, sizeOverride int) (ChunkPlan, error) {
	total := 0.0
	for _, e := range employees {
		total += e.Weight()
	}
	b, err := NewBuilder(policy, len(employees), total, sizeOverride)
	if err != nil {
		return ChunkPlan{}, err
	}
	for _, e := range employees {
		if err := b.Add(e); err != nil {
			return ChunkPlan{}, err
		}
	}
	return b.Plan()
}

// Builder plans a closing while its employees stream by in id order, so planning
// holds only the chunks, never the employees. It needs the employee count (and,
// for the cost-weighted policy, the total weight) up front.
type Builder struct {
	plan   ChunkPlan
	n      int
	sizes  []int   // seed: the size of each chunk
	k      int     // cost-weighted: the number of chunks
	total  float64 // cost-weighted: the closing's total weight
	cum    float64
	added  int
	lastID int64
	cur    *Chunk
	curIdx int // cost-weighted: the bucket the current chunk fills
}

// NewBuilder starts a plan of n employees with the given total weight. It refuses
// a size or a closing outside the bounds (CheckSize), so no plan has more than
// MaxChunksPerRun chunks.
func NewBuilder(policy domain.Policy, n int, totalWeight float64, sizeOverride int) (*Builder, error) {
	if err := CheckSize(n, sizeOverride); err != nil {
		return nil, err
	}
	size := PolicySize(n)
	if sizeOverride > 0 {
		size = sizeOverride
	}
	b := &Builder{plan: ChunkPlan{Policy: policy, ChunkSize: size}, n: n, total: totalWeight}
	switch policy {
	case domain.PolicySeed:
		b.sizes = BalancedSizes(n, size)
	case domain.PolicyCostWeighted:
		b.k = len(BalancedSizes(n, size))
	default:
		return nil, fmt.Errorf("unknown chunk policy %q", policy)
	}
	return b, nil
}

// Add places the next employee; ids must increase.
func (b *Builder) Add(e Employee) error {
	if b.added > 0 && e.ID <= b.lastID {
		return fmt.Errorf("employees must be sorted by id without repeats (at position %d)", b.added)
	}
	if b.added == b.n {
		return fmt.Errorf("more than the %d employees the plan was built for", b.n)
	}
	w := e.Weight()
	var newChunk bool
	switch b.plan.Policy {
	case domain.PolicySeed:
		newChunk = b.cur == nil || b.cur.Employees == b.sizes[b.cur.Index]
	case domain.PolicyCostWeighted:
		// An employee goes to the bucket its weight's midpoint falls in; empty
		// buckets are skipped, so chunks stay contiguous and non-empty.
		idx := 0
		if b.total > 0 {
			idx = int(math.Floor((b.cum + w/2) * float64(b.k) / b.total))
		}
		idx = min(max(idx, 0), b.k-1)
		newChunk = b.cur == nil || idx != b.curIdx
		b.curIdx = idx
	}
	if newChunk {
		b.plan.Chunks = append(b.plan.Chunks, Chunk{Index: len(b.plan.Chunks), FirstID: e.ID})
		b.cur = &b.plan.Chunks[len(b.plan.Chunks)-1]
	}
	b.cur.LastID = e.ID
	b.cur.Employees++
	b.cur.Weight += w
	b.cum += w
	b.added++
	b.lastID = e.ID
	return nil
}

// Plan returns the finished plan.
func (b *Builder) Plan() (ChunkPlan, error) {
	if b.added != b.n {
		return ChunkPlan{}, fmt.Errorf("plan built for %d employees got %d", b.n, b.added)
	}
	return b.plan, nil
}

// SeedSize is the old Celery design's calcular_chunk_size_dinamico with its divisions
// rounded up: n ≤ 50 → n; ≤ 200 → max(25, ⌈n/4⌉); ≤ 500 → max(50, ⌈n/6⌉); else
// max(100, min(150, ⌈n/8⌉)). The divisor is the number of chunks the rule means;
// rounded down (the old design's integer division) the balancing plans one chunk
// more whenever n is not a multiple of it: 133 employees were 5 chunks, a second
// wave on the default 4 worker slots (docs/lifecycle.md#chunk-plan).
func SeedSize(n int) int {
	switch {
	case n <= 50:
		return n
	case n <= 200:
		return max(25, ceilDiv(n, 4))
	case n <= 500:
		return max(50, ceilDiv(n, 6))
	default:
		return max(100, min(150, ceilDiv(n, 8)))
	}
}

// BalancedSizes is the old Celery design's balancear_chunks_optimizado: k = ⌈n/size⌉ chunks,
// sliced every ⌈n/k⌉ employees (the last one takes the rest).
func BalancedSizes(n, size int) []int {
	if n == 0 {
		return nil
	}
	if size <= 0 || n <= size {
		return []int{n}
	}
	k := ceilDiv(n, size)
	step := ceilDiv(n, k)
	var out []int
	for start := 0; start < n; start += step {
		out = append(out, min(step, n-start))
	}
	return out
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
