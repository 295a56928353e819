package schema

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readmeGrants marks README's grant block, which is RuntimeGrants(readmeRole)
// (what `coordinator grants -role consolidation` prints) in a sql fence.
const (
	readmeRole    = "consolidation"
	readmeMarker  = "<!-- generated: coordinator grants -role consolidation (UPDATE_README=1 go test ./pkg/schema) -->\n```sql\n"
	readmeFenceUp = "```\n"
)

// TestREADMEShowsTheRuntimeGrants fails when README's grant block drifts from
// runtime_grants.sql; UPDATE_README=1 rewrites the block.
func TestREADMEShowsTheRuntimeGrants(t *testing.T) {
	t.Parallel()
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	readme := string(b)
	start := strings.Index(readme, readmeMarker)
	require.GreaterOrEqual(t, start, 0, "README has no block marked %q", readmeMarker)
	start += len(readmeMarker)
	end := strings.Index(readme[start:], readmeFenceUp)
	require.GreaterOrEqual(t, end, 0, "README's grant block is not closed")
	want := RuntimeGrants(readmeRole)
	if os.Getenv("UPDATE_README") != "" {
		require.NoError(t, os.WriteFile(path, []byte(readme[:start]+want+readme[start+end:]), 0o644))
		return
	}
	require.Equal(t, want, readme[start:start+end], "README's grants differ from runtime_grants.sql: UPDATE_README=1 go test ./pkg/schema")
}
