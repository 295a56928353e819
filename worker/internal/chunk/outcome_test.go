package chunk

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sum  Summary
		err  error
		want domain.Outcome
	}{
		{"Committed", Summary{WriteSummary: store.WriteSummary{Employees: 3}}, nil, domain.OutcomeCommitted},
		{"AnsweredFromLedger", Summary{FromLedger: true}, nil, domain.OutcomeFromLedger},
		{"StaleAttempt", Summary{}, fmt.Errorf("committing: %w", store.ErrStaleAttempt), domain.OutcomeStale},
		{"DataError", Summary{}, fmt.Errorf("chunk 2: %w", &DataError{Err: errors.New("amount does not fit")}), domain.OutcomeDataError},
		{"AnyOtherError", Summary{}, errors.New("connection reset"), domain.OutcomeError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, outcomeOf(tc.sum, tc.err))
		})
	}
}
