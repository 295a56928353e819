package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
		{"StaleIsFinal", dispatch.ChunkResult{}, callErr(dispatch.KindStale, "stale attempt"), nil,
			attemptVerdict{Outcome: domain.OutcomeStale, Text: "stale attempt"}},
		{"TimeoutRetriesElsewhere", dispatch.ChunkResult{}, callErr(dispatch.KindTimeout, "deadline"), nil,
			attemptVerdict{Outcome: domain.OutcomeTimeout, Retryable: true, CoolDown: true, Text: "deadline"}},
		{"BusyRetriesWithoutCoolDown", dispatch.ChunkResult{}, callErr(dispatch.KindBusy, "worker is at its in-flight limit"), nil,
			attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, Text: "worker is at its in-flight limit"}},
		{"OtherRetriesElsewhere", dispatch.ChunkResult{}, callErr(dispatch.KindOther, "database error 57P01"), nil,
			attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true, Text: "database error 57P01"}},
		{"WrappedCallErrorKeepsItsKind", dispatch.ChunkResult{}, fmt.Errorf("calling: %w", callErr(dispatch.KindStale, "stale attempt")), nil,
			attemptVerdict{Outcome: domain.OutcomeStale, Text: "stale attempt"}},
		{"UntypedErrorRetries", dispatch.ChunkResult{}, errors.New("connection reset"), nil,
			attemptVerdict{Outcome: domain.OutcomeError, Retryable: true, CoolDown: true, Text: "connection reset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, classifyAttempt(tc.res, tc.err, tc.stopped))
		})
	}
}

func TestAfterFailure(t *testing.T) {
	t.Parallel()
	timeout := attemptVerdict{Outcome: domain.OutcomeTimeout, Retryable: true, CoolDown: true, Text: "deadline"}
	busy := attemptVerdict{Outcome: domain.OutcomeBusy, Retryable: true, Text: "full"}
	data := attemptVerdict{Outcome: domain.OutcomeDataError, Text: "employee row 7: total_haberes does not fit numeric(12,2)"}
	stale := attemptVerdict{Outcome: domain.OutcomeStale, Text: "stale attempt"}
	for _, tc := range []struct {
		name     string
		v        attemptVerdict
		try, max int
		want     nextStep
	}{
		{"RetryableWithAttemptsLeft", timeout, 1, 4, nextStep{Retry: true}},
		{"RetryableOneAttemptLeft", timeout, 3, 4, nextStep{Retry: true}},
		{"BusyWithAttemptsLeft", busy, 2, 4, nextStep{Retry: true}},
		{"RetryableOnTheLastAttemptGivesUp", timeout, 4, 4,
			nextStep{FailChunk: true, Reason: "gave up after 4 attempts: deadline"}},
		{"BusyOnTheLastAttemptGivesUp", busy, 4, 4,
			nextStep{FailChunk: true, Reason: "gave up after 4 attempts: full"}},
		{"SingleAttemptAllowed", timeout, 1, 1,
			nextStep{FailChunk: true, Reason: "gave up after 1 attempts: deadline"}},
		{"DataErrorFailsAtOnce", data, 1, 4,
			nextStep{FailChunk: true, Reason: "employee row 7: total_haberes does not fit numeric(12,2)"}},
		{"StaleStopsWithoutFailingTheChunk", stale, 1, 4, nextStep{}},
		{"StaleOnTheLastAttemptStillDoesNotFail", stale, 4, 4, nextStep{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, afterFailure(tc.v, tc.try, tc.max))
		})
	}
}
