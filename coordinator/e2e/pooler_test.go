package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The services through PgBouncer in transaction pooling mode (DATABASE_POOLER=
// transaction, docs/capacity.md "Through a connection pooler"): a closing ends
// with the rows a clean run writes, and so does one during which PostgreSQL
// restarts behind the pooler, which stays up.
func TestClosingsThroughATransactionPooler(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{workers: 2, privatePostgres: true, pooler: true})
	ctx := context.Background()

	migrate := exec.CommandContext(ctx, filepath.Join(binDir, "coordinator"), "migrate")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+c.bouncer.URL("e2e"), "DATABASE_POOLER=transaction")
	out, err := migrate.CombinedOutput()
	require.Error(t, err, "migrate through a transaction pooler: %s", out)
	require.Contains(t, string(out), "migrate needs a session of its own")

	first := c.generate(2000, 181)
	runID := c.startRun(first, 100, 1)
	c.requireCleanResult(first, runID, nil)
	passed, err := c.bouncer.Transactions(ctx, "e2e")
	require.NoError(t, err)
	require.Positive(t, passed, "the services' transactions went through the pooler")

	second := c.generate(5000, 182)
	runID = c.startRun(second, 150, 3)
	require.NoError(t, c.pgServer.Restart(ctx, 3*time.Second))
	c.pool.Reset()
	c.requireCleanResult(second, runID, nil)
	after, err := c.bouncer.Transactions(ctx, "e2e")
	require.NoError(t, err)
	require.Greater(t, after, passed, "the second closing's transactions went through the pooler")
}
