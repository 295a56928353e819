package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/nominacl/consolidation/coordinator/internal/readload"
)

func TestByCodeSpellsCodesAsGRPCDoes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   map[codes.Code]int
		want string
	}{
		{nil, "none"},
		{map[codes.Code]int{codes.OK: 3}, "OK 3"},
		{map[codes.Code]int{codes.Unavailable: 10, codes.Aborted: 990}, "ABORTED 990, UNAVAILABLE 10"},
		{map[codes.Code]int{codes.ResourceExhausted: 2, codes.DeadlineExceeded: 2}, "DEADLINE_EXCEEDED 2, RESOURCE_EXHAUSTED 2"},
	} {
		require.Equal(t, tc.want, byCode(tc.in))
	}
}

func TestReadCountsSplitsShedByRetryInfo(t *testing.T) {
	t.Parallel()
	c := &readload.Counts{Reads: map[codes.Code]int{codes.OK: 5, codes.ResourceExhausted: 7, codes.Unavailable: 2,
		codes.Internal: 1, codes.DeadlineExceeded: 1}, ShedBare: 3}
	ok, shed, bare, unavail, other := readCounts(c)
	require.Equal(t, []int{5, 4, 3, 2, 2}, []int{ok, shed, bare, unavail, other})
	require.Equal(t, "2 (DEADLINE_EXCEEDED 1, INTERNAL 1)", otherCodes(c.Reads))
}

func TestUnloadedPairIsTheClosingBeforeOfTheSameSize(t *testing.T) {
	t.Parallel()
	load := &readload.Counts{}
	rs := []Result{
		{Schema: SchemaOwn, Employees: 2000, Wall: time.Second},
		{Schema: SchemaOwn, Employees: 2000, Wall: 2 * time.Second, Load: load},
		{Schema: SchemaOwn, Employees: 100000, Wall: time.Second, Load: load},
		{Schema: SchemaDjango, Employees: 100000, Wall: time.Second},
		{Schema: SchemaOwn, Employees: 100000, Wall: time.Second, Load: load},
	}
	p, ok := unloadedPair(rs, 1)
	require.True(t, ok)
	require.Equal(t, time.Second, p.Wall)
	for _, i := range []int{0, 2, 4} {
		_, ok := unloadedPair(rs, i)
		require.False(t, ok, "result %d", i)
	}
}
