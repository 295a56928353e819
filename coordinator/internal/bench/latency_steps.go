package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// latencySteps splits the latency of small closings (Consolidate call to the
// final Watch message) into steps, from the client's clock and the ledger's
// timestamps (the same machine's clock; PostgreSQL's now() is its transaction's
// start):
//
//  1. check and plan: the call → the run's row inserted (consolidation_run.started_at);
//  2. answer: the run's row → Consolidate's answer received;
//  3. to the first dispatch: the run's row → its first attempt (slot, lease, chunk list);
//  4. chunks: the first attempt → the last chunk's commit began;
//  5. the end: the last commit → the run's end recorded (finished_at: totals, FinishRun);
//  6. to the watcher: the end recorded → the final Watch message received.
type latencySteps struct {
	steps [6][]float64 // seconds, one per closing
}

var latencyStepNames = [6]string{"check and plan", "answer", "to the first dispatch", "chunks", "the end", "to the watcher"}

// add reads r's run's timestamps from the ledger and records its steps.
func (s *latencySteps) add(ctx context.Context, pool *pgxpool.Pool, r Result) error {
	steps, err := readSteps(ctx, pool, r)
	if err != nil {
		return err
	}
	for i, d := range steps {
		s.steps[i] = append(s.steps[i], d.Seconds())
	}
	return nil
}

// readSteps reads r's run's timestamps from the ledger and splits its latency
// into the six steps above.
func readSteps(ctx context.Context, pool *pgxpool.Pool, r Result) ([6]time.Duration, error) {
	var started, firstAttempt, lastCommit, finished time.Time
	err := pool.QueryRow(ctx, `
		SELECT r.started_at, (SELECT min(started_at) FROM consolidation_chunk_attempt WHERE run_id = r.id),
		       (SELECT max(finished_at) FROM consolidation_chunk WHERE run_id = r.id), r.finished_at
		FROM consolidation_run r WHERE r.id = $1`, r.RunID).Scan(&started, &firstAttempt, &lastCommit, &finished)
	if err != nil {
		return [6]time.Duration{}, fmt.Errorf("reading the timestamps of consolidation %d: %w", r.RunID, err)
	}
	return [6]time.Duration{started.Sub(r.Called), r.Answered.Sub(started), firstAttempt.Sub(started),
		lastCommit.Sub(firstAttempt), finished.Sub(lastCommit), r.Ended.Sub(finished)}, nil
}

// stepsLine is one closing's steps on one line, for the measured closings.
func stepsLine(steps [6]time.Duration) string {
	line := "where the time goes:"
	for i, d := range steps {
		line += fmt.Sprintf(" %d. %s %s;", i+1, latencyStepNames[i], duration(d))
	}
	return line[:len(line)-1]
}

// print writes one line per step: median (lowest–highest).
func (s *latencySteps) print(w io.Writer, label string) {
	if len(s.steps[0]) == 0 {
		return
	}
	fmt.Fprintf(w, "    %s, where the time goes (%d closings; median, lowest–highest):\n", label, len(s.steps[0]))
	for i, name := range latencyStepNames {
		fmt.Fprintf(w, "      %d. %-22s %s\n", i+1, name, spreadOf(s.steps[i]).seconds())
	}
}
