package engine

import (
	"math"

	"github.com/nominacl/consolidation/pkg/store"
)

// The lines an operator greps (README, "Logs"): one "chunk ended" per chunk and
// one "consolidation finished" per run, ids and counts only.
const (
	msgChunkEnded = "chunk ended"
	msgRunEnded   = "consolidation finished"
)

// chunkSummary is the "chunk ended" line of a chunk, from its ledger row: its
// index, how it ended, its employees and records (0 unless it succeeded), the
// worker's seconds on it, its attempts and the worker that ended it.
func chunkSummary(run store.Run, c store.Chunk) []any {
	return []any{"consolidation_id", run.ID, "closing_id", run.ClosingID, "chunk", c.Index,
		"status", string(c.Status), "employees", c.Employees, "records", c.Records,
		"seconds", roundTo(c.DurationSeconds, 3), "attempts", c.Attempts, "worker", c.Worker}
}

// runSummary is the "consolidation finished" line of a run, from its ledger row
// read once its end is recorded: the estado, chunks succeeded of the chunks that
// ended (a split chunk is counted in its halves, and on its own as split),
// the chunks its end cancelled, employees consolidated of the run's (the rows
// that remain) and those whose rows its end removed, result records that remain
// (employee and concept rows), the seconds from start to end and employees
// written per second (removed or not).
func runSummary(run store.Run) []any {
	seconds := run.FinishedAt.Sub(run.StartedAt).Seconds()
	var perSecond float64
	if seconds > 0 {
		perSecond = float64(run.EmployeesDone+run.EmployeesRemoved) / seconds
	}
	return []any{"consolidation_id", run.ID, "closing_id", run.ClosingID, "estado", string(run.Estado),
		"chunks_ok", run.ChunksSucceeded, "chunks", run.TotalChunks - run.ChunksSplit,
		"chunks_failed", run.ChunksFailed, "chunks_split", run.ChunksSplit, "chunks_cancelled", run.ChunksCancelled,
		"employees", run.EmployeesDone, "employees_removed", run.EmployeesRemoved,
		"employees_total", run.TotalEmployees, "records", run.Records,
		"seconds", roundTo(seconds, 3), "employees_per_sec", roundTo(perSecond, 1)}
}

func roundTo(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
