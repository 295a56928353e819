package domain

import "fmt"

// Mode is what a run consolidates.
type Mode string

const (
	// ModeFull consolidates every libro employee of the closing, replacing the
	// closing's previous results (put back if the run's rows are removed).
	ModeFull Mode = "full"
	// ModeRetryFailed consolidates only the employees of the chunks that failed in
	// the closing's previous (partial) run.
	ModeRetryFailed Mode = "retry_failed"
)

// Policy names a way of sizing chunks (docs/lifecycle.md#chunk-plan).
type Policy string

const (
	// PolicySeed is the old Celery design's rule (calcular_chunk_size_dinamico) followed by its
	// balancing (balancear_chunks_optimizado).
	PolicySeed Policy = "seed"
	// PolicyCostWeighted gives chunks of equal total weight, with the old Celery design's weight
	// per employee (predecir_complejidad_chunk).
	PolicyCostWeighted Policy = "cost_weighted"
)

// DefaultPolicy is the policy used when a request names none: the benchmark
// measured it fastest (docs/benchmarks.md).
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
