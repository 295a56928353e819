package e2e_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/localdb"
)

// TestREADMEWalkThrough runs the command block of README's "Walk-through with
// grpcurl", in order, in one bash script with `set -e`, against a PostgreSQL and
// a Redis of the test's own: when a command no longer works as written, the test
// fails. The block is read from README.md itself; only what ties it to one
// machine is rewritten, each rule below saying what and why:
//   - `make build` is skipped: the test's binaries are already built (binDir);
//   - `bin/` is binDir;
//   - 127.0.0.1:5432 and 127.0.0.1:6379 are the test's PostgreSQL and Redis, and
//     createdb and psql reach the former through PGPORT;
//   - the ports 50051–50053 are free ports, and the coordinator, which the block
//     starts without GRPC_ADDR (its default, :50051), gets its free one through
//     the environment;
//   - the RUT the psql line prints is kept in a variable and given where the
//     block says "<the RUT psql printed>";
//   - after a command started in the background (`&`), the script waits until
//     its port answers, as a person typing would.
func TestREADMEWalkThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	block := readmeBlock(t, "## Walk-through with grpcurl")
	grpcurl := grpcurlBinary(t)

	pg, err := localdb.StartPostgres(ctx)
	require.NoError(t, err)
	t.Cleanup(pg.Stop)
	pgURL, err := url.Parse(pg.URL("postgres"))
	require.NoError(t, err)
	rsrv, err := localdb.StartRedis(ctx)
	require.NoError(t, err)
	t.Cleanup(rsrv.Stop)

	ports := map[string]string{}
	for _, p := range []string{"50051", "50052", "50053"} {
		port, err := localdb.FreePort()
		require.NoError(t, err)
		ports[p] = fmt.Sprint(port)
	}
	script := rewriteWalkThrough(t, block, walkThroughRewrite{
		binDir: binDir, pgHostPort: pgURL.Host, redisAddr: rsrv.Addr(), ports: ports})

	dir := t.TempDir()
	path := filepath.Join(dir, "walkthrough.sh")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o600))
	cmd := exec.Command("bash", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PGPORT="+pgURL.Port(), "PATH="+filepath.Dir(grpcurl)+":"+os.Getenv("PATH"),
		"GRPC_ADDR=:"+ports["50051"], "LOG_LEVEL=warn")
	out, err := cmd.CombinedOutput()
	tail := out[max(0, len(out)-6000):] // the export alone prints every employee
	require.NoError(t, err, "README's walk-through failed as written (script %s):\n…%s", script, tail)

	text := string(out)
	// What the block's calls print when they work: the plan of the dry run, the
	// run started, watched to its end, read back, explained and exported.
	require.Contains(t, text, `"validateOnly": true`, "the dry run's answer")
	require.Contains(t, text, `"consolidationId"`, "Consolidate's answer")
	require.Contains(t, text, `"final"`, "WatchConsolidation's last message")
	require.Contains(t, text, `"estado": "datos_consolidados"`, "GetConsolidation of the ended run")
	require.Contains(t, text, `"concepts"`, "ExplainEmployee's answer")
	require.Contains(t, text, `"employees"`, "ExportConsolidation's rows")
}

// readmeBlock is the first ```sh block after heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	require.NotEqual(t, -1, i, "README.md has no %q section", heading)
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	require.NotEqual(t, -1, start, "no sh block under %q", heading)
	s = s[start+len("```sh\n"):]
	end := strings.Index(s, "\n```")
	require.NotEqual(t, -1, end)
	return s[:end]
}

type walkThroughRewrite struct {
	binDir, pgHostPort, redisAddr string
	ports                         map[string]string // README's port → the test's
}

var (
	backgroundPort = regexp.MustCompile(`GRPC_ADDR=:(\d+)`)
	readmePort     = regexp.MustCompile(`\b5005[123]\b`)
)

// rewriteWalkThrough makes the script of TestREADMEWalkThrough from README's
// block; each rule fails the test when the line it rewrites is gone, so a change
// to the block is seen here too.
func rewriteWalkThrough(t *testing.T, block string, r walkThroughRewrite) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("set -euo pipefail\ntrap 'kill -KILL $(jobs -p) 2>/dev/null || true' EXIT\n")
	b.WriteString(`wait_port() { for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "nothing answers on port $1"; return 1; }` + "\n")
	seen := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "make build" {
			seen["make build"] = true
			continue
		}
		line = strings.ReplaceAll(line, "bin/", r.binDir+"/")
		if strings.Contains(line, "127.0.0.1:5432") {
			seen["postgres"] = true
			line = strings.ReplaceAll(line, "127.0.0.1:5432", r.pgHostPort)
		}
		if strings.Contains(line, "127.0.0.1:6379") {
			seen["redis"] = true
			line = strings.ReplaceAll(line, "127.0.0.1:6379", r.redisAddr)
		}
		line = readmePort.ReplaceAllStringFunc(line, func(p string) string { return r.ports[p] })
		if strings.HasPrefix(line, "psql ") && strings.Contains(line, "SELECT rut") {
			seen["rut"] = true
			b.WriteString("RUT=$(" + line + ")\necho \"RUT: $RUT\"\n")
			continue
		}
		if strings.Contains(line, "<the RUT psql printed>") {
			seen["explain"] = true
			line = strings.ReplaceAll(line, "<the RUT psql printed>", `'"$RUT"'`)
		}
		b.WriteString(line + "\n")
		if code, _, _ := strings.Cut(line, "#"); strings.HasSuffix(strings.TrimSpace(code), "&") {
			port := r.ports["50051"] // the coordinator's, from the environment
			if m := backgroundPort.FindStringSubmatch(line); m != nil {
				port = m[1]
			}
			b.WriteString("wait_port " + port + "\n")
		}
	}
	for _, rule := range []string{"make build", "postgres", "redis", "rut", "explain"} {
		require.True(t, seen[rule], "README's walk-through no longer has the line the %q rule rewrites", rule)
	}
	return b.String()
}

// grpcurlBinary is grpcurl from PATH, or built into a directory of the test's
// from the Go module proxy (the version README names).
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "installing grpcurl:\n%s", out)
	return filepath.Join(dir, "grpcurl")
}
