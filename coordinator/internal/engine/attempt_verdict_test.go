package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/pkg/domain"
)

func TestClassifyAttempt(t *testing.T) {
	t.Parallel()
	callErr := func(kind dispatch.ErrorKind, msg string) error {
		return &dispatch.CallError{Kind: kind, Msg: msg, Code: "whatever"}
	}
	for _, tc := range []struct {
		name    string
		res     dispatch.ChunkResult
		err     error
		stopped error
		want    attemptVerdict
	}{
		{"Committed", dispatch.ChunkResult{}, nil, nil,
			attemptVerdict{Outcome: domain.OutcomeCommitted}},
		{"AnsweredFromLedger", dispatch.ChunkResult{FromLedger: true}, nil, nil,
			attemptVerdict{Outcome: domain.OutcomeFromLedger}},
		{"SuccessCountsEvenWhenTheRunStopped", dispatch.ChunkResult{}, nil, errCancelled,
			attemptVerdict{Outcome: domain.OutcomeCommitted}},
		{"CancelAbandonsWhateverTheError", dispatch.ChunkResult{}, callErr(dispatch.KindDataError, "bad amount"), errCancelled,
			attemptVerdict{Outcome: domain.OutcomeAbandoned, Text: "consolidation cancelled"}},
		{"RunDeadlineAbandons", dispatch.ChunkResult{}, callErr(dispatch.KindTimeout, "late"), context.DeadlineExceeded,
			attemptVerdict{Outcome: domain.OutcomeAbandoned, Text: "context deadline exceeded"}},
		{"ShutdownAbandons", dispatch.ChunkResult{}, callErr(dispatch.KindOther, "canceled"), errEngineStopped,
			attemptVerdict{Outcome: domain.OutcomeAbandoned, Text: "coordinator stopping"}},
		{"DataErrorIsFinal", dispatch.ChunkResult{}, callErr(dispatch.KindDataError, "employee row 7: total_haberes does not fit numeric(12,2)"), nil,
			attemptVerdict{Outcome: domain.OutcomeDataError, Text: "employee row 7: total_haberes does not fit numeric(12,2)"}},
		{"DatabaseRefusalEndsTheRun", dispatch.ChunkResult{}, callErr(dispatch.KindDatabaseRefused, "database error 42501 insufficient_privilege"), nil,
			attemptVerdict{Outcome: domain.OutcomeError, EndsRun: true, Text: "database error 42501 insufficient_privilege"}},
		{"StaleIsFinal", dispatch.ChunkResult{}, callErr(dispatch.KindStale, "stale attempt"), nil,
			attemptVerdict{Outcome: domain.OutcomeStale, Text: "stale attempt"}},
		{"TimeoutRetriesElsewhere", dispatch.ChunkResult{}, callErr(dispatch.KindTimeout, "deadline"), nil,
			attemptVerdict{Outcome: domain.OutcomeTimeout, Retryable: true, CoolDown: true, Text: "deadline"}},
		{"BusyRetriesWithoutCoolDown", dispatch.ChunkResult{}, callErr(dispatch.KindBusy, "worker is at its in-flight limit"), nil,
			attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, TurnedAway: true, Text: "worker is at its in-flight limit"}},
		{"NeverStartedRetriesElsewhereWithoutSpendingAnAttempt", dispatch.ChunkResult{}, callErr(dispatch.KindNotStarted, "connection refused"), nil,
			attemptVerdict{Outcome: domain.OutcomeNeverStarted, Retryable: true, CoolDown: true, TurnedAway: true, Text: "connection refused"}},
		{"NeverStartedWhileTheRunStoppedIsAbandoned", dispatch.ChunkResult{}, callErr(dispatch.KindNotStarted, "connection refused"), errCancelled,
			attemptVerdict{Outcome: domain.OutcomeAbandoned, Text: "consolidation cancelled"}},
		{"OtherRetriesElsewhere", dispatch.ChunkResult{}, callErr(dispatch.KindOther, "database error 57P01"), nil,
			attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true, Text: "database error 57P01"}},
		{"WrappedCallErrorKeepsItsKind", dispatch.ChunkResult{}, fmt.Errorf("calling: %w", callErr(dispatch.KindStale, "stale attempt")), nil,
			attemptVerdict{Outcome: domain.OutcomeStale, Text: "stale attempt"}},
		{"WorkerDiedRetriesElsewhere", dispatch.ChunkResult{}, callErr(dispatch.KindWorkerDied, "error reading from server: EOF"), nil,
			attemptVerdict{Outcome: domain.OutcomeWorkerDied, Retryable: true, CoolDown: true, Text: "error reading from server: EOF"}},
		{"UntypedErrorRetries", dispatch.ChunkResult{}, errors.New("connection reset"), nil,
			attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true, Text: "connection reset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, classifyAttempt(tc.res, tc.err, tc.stopped))
		})
	}
}

func TestChunkTriesRecord(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC)
	failed := attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true}
	busy := attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, TurnedAway: true}
	refused := attemptVerdict{Outcome: domain.OutcomeNeverStarted, Retryable: true, CoolDown: true, TurnedAway: true}
	died := attemptVerdict{Outcome: domain.OutcomeWorkerDied, Retryable: true, CoolDown: true}
	type call struct {
		v  attemptVerdict
		at time.Duration // after t0
	}
	for _, tc := range []struct {
		name  string
		calls []call
		want  chunkTries
	}{
		{"FailuresCount", []call{{failed, 0}, {failed, time.Second}},
			chunkTries{Failed: 2}},
		{"TurnedAwayDoesNotCount", []call{{busy, 0}, {refused, time.Second}, {busy, 2 * time.Second}},
			chunkTries{Turned: 3, TurnedSince: t0}},
		{"TheRunOfTurnedAwayStartsAtItsFirst", []call{{failed, 0}, {busy, time.Second}, {refused, 5 * time.Second}},
			chunkTries{Failed: 1, Turned: 2, TurnedSince: t0.Add(time.Second)}},
		{"AFailureEndsTheRun", []call{{busy, 0}, {busy, time.Second}, {failed, 2 * time.Second}},
			chunkTries{Failed: 1}},
		{"DeathsCountApart", []call{{died, 0}, {failed, time.Second}, {died, 2 * time.Second}},
			chunkTries{Failed: 3, Died: 2}},
		{"DeathsSurviveTurnedAway", []call{{died, 0}, {refused, time.Second}, {died, 2 * time.Second}},
			chunkTries{Failed: 2, Died: 2}},
		{"ANewRunStartsAfresh", []call{{busy, 0}, {failed, time.Second}, {refused, 9 * time.Second}},
			chunkTries{Failed: 1, Turned: 1, TurnedSince: t0.Add(9 * time.Second)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got chunkTries
			for _, c := range tc.calls {
				got = got.record(c.v, t0.Add(c.at))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestAfterFailure(t *testing.T) {
	t.Parallel()
	const maxAttempts, budget = 4, time.Minute
	t0 := time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC)
	timeout := attemptVerdict{Outcome: domain.OutcomeTimeout, Retryable: true, CoolDown: true, Text: "deadline"}
	busy := attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, TurnedAway: true, Text: "full"}
	refused := attemptVerdict{Outcome: domain.OutcomeNeverStarted, Retryable: true, CoolDown: true, TurnedAway: true, Text: "connection refused"}
	data := attemptVerdict{Outcome: domain.OutcomeDataError, Text: "employee row 7: total_haberes does not fit numeric(12,2)"}
	stale := attemptVerdict{Outcome: domain.OutcomeStale, Text: "stale attempt"}
	died := attemptVerdict{Outcome: domain.OutcomeWorkerDied, Retryable: true, CoolDown: true, Text: "EOF"}
	turned := func(failed, n int, since time.Duration) chunkTries {
		return chunkTries{Failed: failed, Turned: n, TurnedSince: t0.Add(-since)}
	}
	for _, tc := range []struct {
		name      string
		v         attemptVerdict
		tries     chunkTries
		max       int
		employees int // 0: 150
		want      nextStep
	}{
		{"RetryableWithAttemptsLeft", timeout, chunkTries{Failed: 1}, maxAttempts, 0, nextStep{Retry: true, Backoff: 1}},
		{"RetryableOneAttemptLeft", timeout, chunkTries{Failed: 3}, maxAttempts, 0, nextStep{Retry: true, Backoff: 3}},
		{"RetryableOnTheLastAttemptGivesUp", timeout, chunkTries{Failed: 4}, maxAttempts, 0,
			nextStep{FailChunk: true, Reason: "gave up after 4 attempts: deadline"}},
		{"SingleAttemptAllowed", timeout, chunkTries{Failed: 1}, 1, 0,
			nextStep{FailChunk: true, Reason: "gave up after 1 attempts: deadline"}},
		{"BusyRetriesWithinTheBudget", busy, turned(0, 2, 10*time.Second), maxAttempts, 0, nextStep{Retry: true, Backoff: 2}},
		{"BusyDoesNotSpendAttempts", busy, turned(0, 40, 50*time.Second), maxAttempts, 0, nextStep{Retry: true, Backoff: turnedAwayBackoffCap}},
		{"BusyRetriesWhenEveryAttemptIsSpent", busy, turned(maxAttempts, 1, 0), maxAttempts, 0, nextStep{Retry: true, Backoff: 1}},
		{"NeverStartedRetriesWithinTheBudget", refused, turned(1, 3, 59*time.Second), 1, 0, nextStep{Retry: true, Backoff: 3}},
		{"TurnedAwayBackoffIsCapped", refused, turned(0, 9, time.Second), 1, 0, nextStep{Retry: true, Backoff: turnedAwayBackoffCap}},
		{"BusyPastTheBudgetFailsTheChunk", busy, turned(0, 30, budget), maxAttempts, 0,
			nextStep{FailChunk: true, Reason: "no worker took the chunk for 1m0s (30 calls turned away): full"}},
		{"NeverStartedPastTheBudgetFailsTheChunk", refused, turned(2, 25, 90*time.Second), maxAttempts, 0,
			nextStep{FailChunk: true, Reason: "no worker took the chunk for 1m30s (25 calls turned away): connection refused"}},
		{"AFailureAfterBusyRepliesBacksOffFromTheFailures", timeout, chunkTries{Failed: 2}, maxAttempts, 0, nextStep{Retry: true, Backoff: 2}},
		{"DataErrorSplitsAtOnce", data, chunkTries{Failed: 1}, maxAttempts, 0,
			nextStep{Split: true, Reason: "employee row 7: total_haberes does not fit numeric(12,2)"}},
		{"DataErrorSplitsTwoEmployees", data, chunkTries{Failed: 1}, maxAttempts, 2,
			nextStep{Split: true, Reason: "employee row 7: total_haberes does not fit numeric(12,2)"}},
		{"DataErrorOnOneEmployeeFailsIt", data, chunkTries{Failed: 1}, maxAttempts, 1,
			nextStep{FailChunk: true, Reason: "employee row 7: total_haberes does not fit numeric(12,2)"}},
		{"WorkerDiedWithAttemptsLeftRetries", died, chunkTries{Failed: 3, Died: 3}, maxAttempts, 0, nextStep{Retry: true, Backoff: 3}},
		{"WorkersDyingOnEveryAttemptSplit", died, chunkTries{Failed: 4, Died: 4}, maxAttempts, 0,
			nextStep{Split: true, WorkerDied: true, Reason: "workers died holding it on all 4 attempts: EOF"}},
		{"WorkersDyingOnEveryAttemptOfOneEmployeeFailIt", died, chunkTries{Failed: 4, Died: 4}, maxAttempts, 1,
			nextStep{FailChunk: true, WorkerDied: true, Reason: "workers died holding it on all 4 attempts: EOF"}},
		{"DeathsMixedWithTimeoutsFailTheChunk", died, chunkTries{Failed: 4, Died: 3}, maxAttempts, 0,
			nextStep{FailChunk: true, Reason: "gave up after 4 attempts: EOF"}},
		{"ATimeoutLastAfterDeathsFailsTheChunk", timeout, chunkTries{Failed: 4, Died: 3}, maxAttempts, 0,
			nextStep{FailChunk: true, Reason: "gave up after 4 attempts: deadline"}},
		{"StaleStopsWithoutFailingTheChunk", stale, chunkTries{Failed: 1}, maxAttempts, 0, nextStep{}},
		{"StaleOnTheLastAttemptStillDoesNotFail", stale, chunkTries{Failed: 4}, maxAttempts, 0, nextStep{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, afterFailure(tc.v, tc.tries, t0, tc.max, budget, cmp.Or(tc.employees, 150)))
		})
	}
}
