package plan

import "fmt"

// Bounds of a plan, so that neither a worker nor the coordinator is asked to hold
// more than it comfortably can (docs/rules.md, "Chunk size").
const (
	// MaxChunkSize is the largest chunk_size a request may ask for. A worker holds
	// a whole chunk in memory (its libro and novedades lines, the consolidated rows
	// and the COPY buffers): measured at about 12 KiB of resident memory per
	// employee of a chunk in flight with the usual ~25 concept lines
	// (docs/benchmarks.md, "Chunk size against per-chunk overhead"), so 5,000
	// employees are about 60 MiB per chunk, 120 MiB with the default two chunks in
	// flight, within the worker pod's 256 MiB limit.
	MaxChunkSize = 5_000
	// MaxChunksPerRun is the most chunks one run may be planned in. The coordinator
	// loads a run's open chunks whole (ledger rows of a few hundred bytes), keeps a
	// Redis set of its done chunks and writes one ledger row per chunk in the
	// run's first transaction: 10,000 keeps each of those to a few MiB.
	MaxChunksPerRun = 10_000
	// MaxEmployees is the largest closing a run can plan: MaxChunksPerRun chunks of
	// MaxChunkSize employees.
	MaxEmployees = MaxChunkSize * MaxChunksPerRun
)

// MinChunkSize is the smallest chunk size that plans n employees in at most
// MaxChunksPerRun chunks: 1 up to MaxChunksPerRun employees (0 for none).
func MinChunkSize(n int) int { return ceilDiv(n, MaxChunksPerRun) }

// PolicySize is the chunk size a policy plans n employees with when the request
// names none: the old Celery design's size rule (SeedSize), raised to MinChunkSize(n) for
// closings so large (over 1,500,000 employees) that the old Celery design's 150 would plan
// more than MaxChunksPerRun chunks.
func PolicySize(n int) int { return max(SeedSize(n), MinChunkSize(n)) }

// CheckSize reports whether n employees can be planned with chunk size size (0:
// PolicySize): the size must be in 0..MaxChunkSize and plan at most
// MaxChunksPerRun chunks, and n must be at most MaxEmployees.
func CheckSize(n, size int) error {
	switch {
	case size < 0 || size > MaxChunkSize:
		return fmt.Errorf("chunk size %d is outside 0..%d", size, MaxChunkSize)
	case n > MaxEmployees:
		return fmt.Errorf("%d employees are more than the %d one run can plan", n, MaxEmployees)
	case size > 0 && size < MinChunkSize(n):
		return fmt.Errorf("chunk size %d would plan %d employees in more than %d chunks; the smallest is %d",
			size, n, MaxChunksPerRun, MinChunkSize(n))
	}
	return nil
}
