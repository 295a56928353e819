package engine

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/engine/ledgertest"
	"github.com/nominacl/consolidation/pkg/store"
)

// traceparentLedger counts the reads of a run's traceparent.
type traceparentLedger struct {
	*ledgertest.Ledger
	reads atomic.Int64
}

func (l *traceparentLedger) RunTraceparent(ctx context.Context, runID int64) (string, error) {
	l.reads.Add(1)
	return l.Ledger.RunTraceparent(ctx, runID)
}

// With tracing off (the unit tests install no tracer provider) the run's span
// records nothing, and driving a run reads no traceparent for it.
func TestRunSpanReadsNoTraceparentWithTracingOff(t *testing.T) {
	t.Parallel()
	l := &traceparentLedger{Ledger: ledgertest.New(ledgertest.NewClock(time.Now()))}
	e, err := newEngine(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Replica: "r"}, l, nil,
		&fakeWorkers{ledger: l.Ledger, slots: make(chan struct{}, 1)}, newMemProgress())
	require.NoError(t, err)
	_, span := e.startRunSpan(t.Context(), store.Run{ID: 1, ClosingID: 2})
	defer span.End()
	require.False(t, span.IsRecording())
	require.Zero(t, l.reads.Load())
}
