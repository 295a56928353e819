package synth_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/pgtest"
	"github.com/nominacl/consolidation/pkg/synth"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestGenerateAnalyzesUnlessAsked: a generated closing leaves its source tables
// analyzed, as a payroll database's are; with NoAnalyze it leaves that to its
// caller.
func TestGenerateAnalyzesUnlessAsked(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	analyzes := func() int64 {
		var n int64
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'nomina_registro_concepto_empleado'").Scan(&n))
		return n
	}
	before := analyzes()

	sum, err := synth.Generate(ctx, pool, synth.Config{Employees: 20, Seed: 3, NoAnalyze: true})
	require.NoError(t, err)
	require.Equal(t, 20, sum.Employees)
	require.Equal(t, before, analyzes(), "NoAnalyze: no ANALYZE")

	_, err = synth.Generate(ctx, pool, synth.Config{Employees: 20, Seed: 4})
	require.NoError(t, err)
	require.Equal(t, before+1, analyzes())
}
