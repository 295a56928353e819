package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestEndAttempt(t *testing.T) {
	t.Parallel()

	t.Run("RecordsOutcomeAndError", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		token := dispatch(t, pool, runID, 0)
		require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 0, 1, domain.OutcomeTimeout, "deadline exceeded"))
		require.Equal(t, []attemptRow{{Attempt: 1, Token: token, Worker: "worker-a", Finished: true,
			Outcome: string(domain.OutcomeTimeout), Error: "deadline exceeded"}}, attemptsOf(t, pool, runID, 0))
	})
	t.Run("NoErrorTextStoredAsNone", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatch(t, pool, runID, 0)
		require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 0, 1, domain.OutcomeFromLedger, ""))
		require.Equal(t, 1, countRows(t, pool,
			"SELECT count(*) FROM consolidation_chunk_attempt WHERE run_id = $1 AND outcome = $2 AND error IS NULL", runID, domain.OutcomeFromLedger))
	})
	t.Run("SecondCallDoesNotOverwrite", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatch(t, pool, runID, 0)
		require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 0, 1, domain.OutcomeBusy, "no room"))
		require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 0, 1, domain.OutcomeAbandoned, "run cancelled"))
		got := attemptsOf(t, pool, runID, 0)[0]
		require.Equal(t, string(domain.OutcomeBusy), got.Outcome)
		require.Equal(t, "no room", got.Error)
	})
	t.Run("DoesNotOverwriteCommittedAttempt", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatchAndCommit(t, pool, runID, 0)
		require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 0, 1, domain.OutcomeError, "connection reset"))
		got := attemptsOf(t, pool, runID, 0)[0]
		require.Equal(t, string(domain.OutcomeCommitted), got.Outcome)
		require.Empty(t, got.Error)
	})
	t.Run("OnlyTheNamedAttempt", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatch(t, pool, runID, 0)
		dispatch(t, pool, runID, 0)
		dispatch(t, pool, runID, 1)
		require.NoError(t, store.EndAttempt(t.Context(), pool, runID, 0, 1, domain.OutcomeError, "worker gone"))
		attempts := attemptsOf(t, pool, runID, 0)
		require.True(t, attempts[0].Finished)
		require.False(t, attempts[1].Finished)
		require.False(t, attemptsOf(t, pool, runID, 1)[0].Finished)
	})
}

func TestRecordRefusedCommit(t *testing.T) {
	t.Parallel()

	t.Run("MarksTheAttemptOfTheToken", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		old := dispatch(t, pool, runID, 0)
		dispatch(t, pool, runID, 0)
		_, _, err := commitChunk(t, pool, runID, 0, old)
		require.ErrorIs(t, err, store.ErrStaleAttempt)
		require.NoError(t, store.RecordRefusedCommit(t.Context(), pool, runID, 0, old))

		attempts := attemptsOf(t, pool, runID, 0)
		require.True(t, attempts[0].CommitRefused)
		require.False(t, attempts[1].CommitRefused, "the current attempt is untouched")
		require.False(t, attempts[0].Finished, "how the attempt ended is EndAttempt's to say")
	})
	t.Run("UnknownTokenChangesNothing", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		dispatch(t, pool, runID, 0)
		require.NoError(t, store.RecordRefusedCommit(t.Context(), pool, runID, 0, newToken()))
		require.False(t, attemptsOf(t, pool, runID, 0)[0].CommitRefused)
	})
}
