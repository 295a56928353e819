package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/store"
)

func TestRunTraceparent(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	t.Run("KeepsTheStartingCallsTraceparent", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		nr := runOf(7, estadoOf(t, pool, 7), threeChunks)
		nr.Traceparent = tp
		runID, err := store.StartRun(t.Context(), pool, nr)
		require.NoError(t, err)
		got, err := store.RunTraceparent(t.Context(), pool, runID)
		require.NoError(t, err)
		require.Equal(t, tp, got)
	})
	t.Run("WithoutTraceNothingIsStored", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		var stored *string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT traceparent FROM consolidation_run WHERE id = $1", runID).Scan(&stored))
		require.Nil(t, stored)
		got, err := store.RunTraceparent(t.Context(), pool, runID)
		require.NoError(t, err)
		require.Empty(t, got)
	})
	t.Run("UnknownRunNotFound", func(t *testing.T) {
		t.Parallel()
		pool, runID := newLedger(t)
		_, err := store.RunTraceparent(t.Context(), pool, runID+1)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
