package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRunGauges(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	g := newRunGauges()
	g.setPending(1, 5) // not driven: ignored
	g.driving(1, now.Add(time.Hour))
	g.driving(2, now.Add(-time.Minute))
	g.setPending(1, 7)
	g.setPending(2, 3)
	active, pending, late := g.snapshot(now)
	require.Equal(t, []int{2, 10, 1}, []int{active, pending, late})

	g.setPending(1, 0)
	g.done(2)
	g.setPending(2, 4) // ended: ignored
	active, pending, late = g.snapshot(now)
	require.Equal(t, []int{1, 0, 0}, []int{active, pending, late})
}
