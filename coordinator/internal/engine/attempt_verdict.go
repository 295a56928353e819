package engine

import (
	"errors"
	"fmt"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/pkg/domain"
)

// attemptVerdict is what the result of one ProcessChunk call means for its chunk.
type attemptVerdict struct {
	Outcome   domain.Outcome
	Retryable bool   // another attempt may succeed
	CoolDown  bool   // the worker is passed over for a while
	Text      string // recorded on the attempt
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
	case dispatch.KindStale:
		return attemptVerdict{Outcome: domain.OutcomeStale, Text: text}
	case dispatch.KindTimeout:
		return attemptVerdict{Outcome: domain.OutcomeTimeout, Retryable: true, CoolDown: true, Text: text}
	case dispatch.KindBusy: // not the worker's fault: no cool-down
		return attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, Text: text}
	default:
		return attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true, Text: text}
	}
}

// nextStep is what follows a failed attempt.
type nextStep struct {
	Retry     bool
	FailChunk bool   // mark the chunk failed for good, with Reason
	Reason    string // the chunk's error
}

// afterFailure decides what follows the try-th failed attempt of a chunk (one the
// ledger does not show committed): retry while the failure is retryable and
// attempts are left; otherwise the chunk fails, except after a stale attempt (the
// chunk was superseded, not failed: whoever superseded it decides).
func afterFailure(v attemptVerdict, try, maxAttempts int) nextStep {
	switch {
	case v.Retryable && try < maxAttempts:
		return nextStep{Retry: true}
	case v.Outcome == domain.OutcomeStale:
		return nextStep{}
	case v.Retryable:
		return nextStep{FailChunk: true, Reason: fmt.Sprintf("gave up after %d attempts: %s", try, v.Text)}
	default:
		return nextStep{FailChunk: true, Reason: v.Text}
	}
}
