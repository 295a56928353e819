package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/pkg/domain"
)

// attemptVerdict is what the result of one ProcessChunk call means for its chunk.
type attemptVerdict struct {
	Outcome   domain.Outcome
	Retryable bool // another attempt may succeed
	CoolDown  bool // the worker is passed over for a while
	// TurnedAway: no worker did anything with the chunk (it was busy, or no worker
	// took the call on: never reached, or died before taking a slot for it). Such
	// a call does not count toward MaxAttempts; the time spent on them in a row is
	// bounded by BusyBudget instead.
	TurnedAway bool
	Text       string // recorded on the attempt
	// EndsRun: the database refused the chunk for a reason every chunk meets (a
	// privilege, a missing column): the run fails with Text instead of retrying
	// or splitting.
	EndsRun bool
}

// classifyAttempt judges a ProcessChunk call from its result, its error (a
// *dispatch.CallError, or any other error, taken as a failure worth a retry) and
// the cause the run stopped for (nil while the run goes on). A call that succeeded
// counts even when the run stopped meanwhile.
func classifyAttempt(res dispatch.ChunkResult, err error, runStopped error) attemptVerdict {
	switch {
	case err == nil && res.FromLedger:
		return attemptVerdict{Outcome: domain.OutcomeFromLedger}
	case err == nil:
		return attemptVerdict{Outcome: domain.OutcomeCommitted}
	case runStopped != nil: // cancel, run timeout or shutdown: fencing stops any commit
		return attemptVerdict{Outcome: domain.OutcomeAbandoned, Text: runStopped.Error()}
	}
	kind, text := dispatch.KindOther, err.Error()
	var ce *dispatch.CallError
	if errors.As(err, &ce) {
		kind, text = ce.Kind, ce.Msg
	}
	switch kind {
	case dispatch.KindDataError:
		return attemptVerdict{Outcome: domain.OutcomeDataError, Text: text}
	case dispatch.KindDatabaseRefused:
		return attemptVerdict{Outcome: domain.OutcomeError, EndsRun: true, Text: text}
	case dispatch.KindStale:
		return attemptVerdict{Outcome: domain.OutcomeStale, Text: text}
	case dispatch.KindTimeout:
		return attemptVerdict{Outcome: domain.OutcomeTimeout, Retryable: true, CoolDown: true, Text: text}
	case dispatch.KindBusy: // not the worker's fault: no cool-down
		return attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, TurnedAway: true, Text: text}
	case dispatch.KindNotStarted: // the worker cannot be reached: try others meanwhile
		return attemptVerdict{Outcome: domain.OutcomeNeverStarted, Retryable: true, CoolDown: true, TurnedAway: true, Text: text}
	case dispatch.KindWorkerDied: // it may die on this chunk again: counted apart (chunkTries.Died)
		return attemptVerdict{Outcome: domain.OutcomeWorkerDied, Retryable: true, CoolDown: true, Text: text}
	default:
		return attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true, Text: text}
	}
}

// chunkTries is what a chunk has been through in one runChunk: the failed calls
// that count toward MaxAttempts, and the current run of calls turned away.
type chunkTries struct {
	Failed      int       // calls a worker took on (or answered) that failed
	Died        int       // of those, calls whose worker died holding the chunk
	Turned      int       // calls turned away in a row (busy, never started)
	TurnedSince time.Time // when the first of those came back
}

// record counts a failed call that came back at now.
func (t chunkTries) record(v attemptVerdict, now time.Time) chunkTries {
	if !v.TurnedAway {
		died := t.Died
		if v.Outcome == domain.OutcomeWorkerDied {
			died++
		}
		return chunkTries{Failed: t.Failed + 1, Died: died}
	}
	if t.Turned == 0 {
		t.TurnedSince = now
	}
	t.Turned++
	return t
}

// nextStep is what follows a failed attempt.
type nextStep struct {
	Retry     bool
	Backoff   int  // with Retry: the retry's number in its series, for the backoff
	FailChunk bool // mark the chunk failed for good, with Reason
	// Split: replace the chunk by its two halves (docs/lifecycle.md#how-a-run-ends: a failing chunk
	// is split down to the employee that fails it), Reason recorded on it.
	Split bool
	// WorkerDied, with FailChunk or Split: workers died holding the chunk on every
	// attempt.
	WorkerDied bool
	Reason     string // the chunk's error
}

// turnedAwayBackoffCap caps the backoff series of calls turned away: a busy
// worker frees a slot within about a chunk's time, and several coordinator
// replicas share the workers, so a chunk that met busy workers tries again within
// RetryBaseDelay·2² (800 ms by default) rather than growing to RetryMaxDelay.
const turnedAwayBackoffCap = 3

// afterFailure decides what follows a failed attempt of a chunk (one the ledger
// does not show committed), t counting it (chunkTries.record), at now. A call
// turned away (busy, never started) is retried until the chunk has been turned
// away for busyBudget in a row; any other retryable failure while fewer than
// maxAttempts have failed. Otherwise the chunk fails, except after a stale
// attempt (the chunk was superseded, not failed: whoever superseded it decides).
// Retries back off by their number in their own series: a real failure after a
// run of busy replies starts from the backoff of the failures before them.
//
// A failure that may be one employee's fault is narrowed down instead (docs/rules.md,
// splitting): a data error (bad data, a permanent SQLSTATE), or workers dying on
// every one of the maxAttempts attempts, splits a chunk of more than one employee
// (employees) in two; a single employee fails, saying whether workers died on it.
func afterFailure(v attemptVerdict, t chunkTries, now time.Time, maxAttempts int, busyBudget time.Duration, employees int) nextStep {
	turnedFor := now.Sub(t.TurnedSince)
	allDied := t.Failed > 0 && t.Died == t.Failed
	switch {
	case v.Retryable && v.TurnedAway && turnedFor < busyBudget:
		return nextStep{Retry: true, Backoff: min(t.Turned, turnedAwayBackoffCap)}
	case v.Retryable && !v.TurnedAway && t.Failed < maxAttempts:
		return nextStep{Retry: true, Backoff: t.Failed}
	case v.Outcome == domain.OutcomeStale:
		return nextStep{}
	case v.Outcome == domain.OutcomeDataError:
		return nextStep{Split: employees > 1, FailChunk: employees <= 1, Reason: v.Text}
	case v.Retryable && !v.TurnedAway && allDied:
		return nextStep{Split: employees > 1, FailChunk: employees <= 1, WorkerDied: true,
			Reason: fmt.Sprintf("workers died holding it on all %d attempts: %s", t.Failed, v.Text)}
	case v.Retryable && v.TurnedAway:
		return nextStep{FailChunk: true, Reason: fmt.Sprintf("no worker took the chunk for %s (%d calls turned away): %s",
			turnedFor.Round(time.Second), t.Turned, v.Text)}
	case v.Retryable:
		return nextStep{FailChunk: true, Reason: fmt.Sprintf("gave up after %d attempts: %s", t.Failed, v.Text)}
	default:
		return nextStep{FailChunk: true, Reason: v.Text}
	}
}
