// Package plan splits a closing's employees into chunks (SPEC section 7). Every
// policy cuts the employees, in id order, into contiguous runs, so a chunk is
// described by its first and last employee id and no message or ledger row grows
// with the closing.
package plan

import (
	"fmt"
	"math"
)

// Policy names a way of sizing chunks.
type Policy string

const (
	// PolicySeed is the seed's rule (calcular_chunk_size_dinamico) followed by its
	// balancing (balancear_chunks_optimizado).
	PolicySeed Policy = "seed"
	// PolicyCostWeighted gives chunks of equal total weight, with the seed's weight
	// per employee (predecir_complejidad_chunk) and the seed rule's chunk count.
	PolicyCostWeighted Policy = "cost_weighted"
)

// DefaultPolicy is the policy used when a request names none.
const DefaultPolicy = PolicySeed

// ParsePolicy validates a policy name; "" means DefaultPolicy.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return DefaultPolicy, nil
	case PolicySeed, PolicyCostWeighted:
		return p, nil
	default:
		return "", fmt.Errorf("unknown chunk policy %q (want %q or %q)", s, PolicySeed, PolicyCostWeighted)
	}
}

// Employee is what planning needs to know of one libro employee.
type Employee struct {
	ID            int64
	Concepts      int // libro concept lines
	Discrepancies int // open discrepancies of the closing naming this employee
	Movements     int // movement rows of the employee's RUT
}

// Weight is the seed's complexity estimate: 1 + 0.1·concepts + 0.5·discrepancies +
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
	Policy    Policy
	ChunkSize int // the size rule's result (or the override) before balancing
	Chunks    []Chunk
}

// NewChunkPlan plans employees (sorted by id) with a policy. sizeOverride > 0
// replaces the seed's size rule.
func NewChunkPlan(policy Policy, employees []Employee, sizeOverride int) (ChunkPlan, error) {
	n := len(employees)
	size := SeedSize(n)
	if sizeOverride > 0 {
		size = sizeOverride
	}
	p := ChunkPlan{Policy: policy, ChunkSize: size}
	if n == 0 {
		return p, nil
	}
	for i := 1; i < n; i++ {
		if employees[i].ID <= employees[i-1].ID {
			return ChunkPlan{}, fmt.Errorf("employees must be sorted by id without repeats (at position %d)", i)
		}
	}
	var sizes []int
	switch policy {
	case PolicySeed:
		sizes = BalancedSizes(n, size)
	case PolicyCostWeighted:
		sizes = weightedSizes(employees, len(BalancedSizes(n, size)))
	default:
		return ChunkPlan{}, fmt.Errorf("unknown chunk policy %q", policy)
	}
	start := 0
	for i, s := range sizes {
		c := Chunk{Index: i, FirstID: employees[start].ID, LastID: employees[start+s-1].ID, Employees: s}
		for _, e := range employees[start : start+s] {
			c.Weight += e.Weight()
		}
		p.Chunks = append(p.Chunks, c)
		start += s
	}
	return p, nil
}

// SeedSize is the seed's calcular_chunk_size_dinamico: n ≤ 50 → n; ≤ 200 →
// max(25, n/4); ≤ 500 → max(50, n/6); else max(100, min(150, n/8)).
func SeedSize(n int) int {
	switch {
	case n <= 50:
		return n
	case n <= 200:
		return max(25, n/4)
	case n <= 500:
		return max(50, n/6)
	default:
		return max(100, min(150, n/8))
	}
}

// BalancedSizes is the seed's balancear_chunks_optimizado: k = ⌈n/size⌉ chunks,
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

// weightedSizes cuts employees into at most k contiguous chunks of about equal
// weight: an employee goes to the chunk its weight's midpoint falls in.
func weightedSizes(employees []Employee, k int) []int {
	total := 0.0
	for _, e := range employees {
		total += e.Weight()
	}
	sizes := make([]int, k)
	cum := 0.0
	for _, e := range employees {
		w := e.Weight()
		idx := int(math.Floor((cum + w/2) * float64(k) / total))
		idx = min(max(idx, 0), k-1)
		sizes[idx]++
		cum += w
	}
	out := sizes[:0]
	for _, s := range sizes {
		if s > 0 {
			out = append(out, s)
		}
	}
	return out
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
