package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// run is Main with captured output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelpOfEveryCommand: help X and X -h exit 0 with X's usage on stdout, for
// every command, and a bad flag exits 2 with the usage on stderr.
func TestHelpOfEveryCommand(t *testing.T) {
	t.Parallel()
	names := []string{"help", "version", "completion"}
	for name := range (Program{}).commands() {
		names = append(names, name)
	}
	for name := range cierrectl().Commands {
		names = append(names, name)
	}
	for _, name := range names {
		code, stdout, stderr := run(t, "help", name)
		require.Equal(t, ExitOK, code, "help %s: %s", name, stderr)
		require.Empty(t, stderr, "help %s", name)
		require.Contains(t, stdout, "sage", "help %s", name)
		if name == "help" || name == "version" {
			continue
		}
		code, stdout2, _ := run(t, name, "-h")
		require.Equal(t, ExitOK, code, "%s -h", name)
		require.Equal(t, stdout, stdout2, "%s -h is help %s", name, name)
		if name == "completion" {
			continue
		}
		code, _, stderr = run(t, name, "-no-such-flag")
		require.Equal(t, ExitUsage, code, "%s -no-such-flag", name)
		require.Contains(t, stderr, "flag provided but not defined: -no-such-flag", name)
	}
}

// TestJSONOnEveryCommandThatPrintsData: each command that prints what the
// coordinator answered takes -json; export writes CSV or xlsx.
func TestJSONOnEveryCommandThatPrintsData(t *testing.T) {
	t.Parallel()
	for name := range cierrectl().Commands {
		if name == "export" {
			continue
		}
		_, stdout, _ := run(t, name, "-h")
		require.Contains(t, stdout, "  -json\n", name)
	}
}

func TestRunEndExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		estado domain.Estado
		code   int
	}{
		{domain.EstadoConsolidados, ExitOK},
		{domain.EstadoParcial, ExitPartial},
		{domain.EstadoError, ExitFailed},
		{domain.EstadoCancelada, ExitFailed},
		{domain.EstadoTimeout, ExitFailed},
		{domain.EstadoErrorRecursos, ExitFailed},
		{domain.EstadoConsolidando, ExitFailed}, // not ended: nobody saw it end
	}
	for _, tt := range tests {
		err := runEndError(&consolidationv1.Consolidation{ConsolidationId: 7, Estado: string(tt.estado), Error: "1 of 3 employees failed"})
		require.Equal(t, tt.code, exitCode(err), tt.estado)
		if tt.code != ExitOK {
			require.EqualError(t, err, "consolidation 7 ended "+string(tt.estado)+": 1 of 3 employees failed")
		}
	}
}

func TestUsageAndHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		code     int
		stdout   string // contained; "" means stdout is empty
		stderr   string // contained; "" means stderr is empty
		exitCode int
	}{
		{args: []string{"help"}, code: ExitOK, stdout: "Exit codes:"},
		{args: []string{"-h"}, code: ExitOK, stdout: "Commands:"},
		{args: []string{"--help"}, code: ExitOK, stdout: "Commands:"},
		{args: nil, code: ExitUsage, stderr: "Commands:"},
		{args: []string{"frobnicate"}, code: ExitUsage, stderr: "unknown command \"frobnicate\"\n\ncierrectl: operate"},
		{args: []string{"help", "consolidate"}, code: ExitOK, stdout: "Usage of consolidate:\n  -addr string"},
		{args: []string{"cancel", "-h"}, code: ExitOK, stdout: "  -yes\n"},
		{args: []string{"status", "-h"}, code: ExitOK, stdout: "  -json\n"},
		{args: []string{"version"}, code: ExitOK, stdout: "cierrectl (devel) (revision "},
		{args: []string{"-version"}, code: ExitOK, stdout: "cierrectl (devel) (revision "},
		{args: []string{"consolidate", "-bogus"}, code: ExitUsage, stderr: "flag provided but not defined: -bogus\nUsage of consolidate:"},
		{args: []string{"consolidate"}, code: ExitUsage, stderr: "cierrectl consolidate: -closing N is required"},
		{args: []string{"consolidate", "-closing", "1", "-policy", "fast"}, code: ExitUsage, stderr: "-policy \"fast\""},
		{args: []string{"consolidate", "-closing", "1", "-chunk-size", "99999"}, code: ExitUsage,
			stderr: "-chunk-size 99999: want 1..5000 employees, or 0 for the policy's size"},
		{args: []string{"watch", "-closing", "1", "-run", "2"}, code: ExitUsage, stderr: "give exactly one of -closing N or -run N"},
		{args: []string{"status", "-closing", "1", "extra"}, code: ExitUsage, stderr: "unexpected argument \"extra\""},
		{args: []string{"completion", "fish"}, code: ExitUsage, stderr: "want completion bash or completion zsh"},
		{args: []string{"generate"}, code: ExitUsage, stderr: "unknown command \"generate\""}, // devcluster's
		{args: []string{"explain", "-closing", "1"}, code: ExitUsage, stderr: "cierrectl explain: -closing N and -rut R are required"},
		{args: []string{"explain", "-closing", "1", "-rut", "12.345.678-0"}, code: ExitUsage,
			stderr: "-rut \"12.345.678-0\": the check digit is wrong: that body's is 5\n"},
		{args: []string{"explain", "-closing", "1", "-rut", "12.34x.678-5"}, code: ExitUsage,
			stderr: "-rut \"12.34x.678-5\" is not a RUT: not digits followed by a check digit (write it as 12.345.678-5"},
		{args: []string{"export", "-closing", "1", "-format", "pdf"}, code: ExitUsage, stderr: "-format \"pdf\": want csv or xlsx"},
		{args: []string{"export", "-closing", "1", "-format", "xlsx"}, code: ExitUsage, stderr: "-format xlsx needs -o FILE"},
		{args: []string{"list", "-since", "yesterday"}, code: ExitUsage, stderr: "-since \"yesterday\": want an RFC 3339 time"},
		{args: []string{"list", "-limit", "0"}, code: ExitUsage, stderr: "-limit must be > 0"},
		{args: []string{"status", "-closing", "1", "-tls-cert", "c.pem"}, code: ExitUsage, stderr: "-tls-cert, -tls-key and -tls-ca go together"},
		{args: []string{"help", "version"}, code: ExitOK, stdout: "version (or -version)"},
		{args: []string{"help", "completion"}, code: ExitOK, stdout: "completion bash|zsh"},
		{args: []string{"help", "frobnicate"}, code: ExitUsage, stderr: "unknown command \"frobnicate\""},
		{args: []string{"help", "status", "watch"}, code: ExitUsage, stderr: "want one command"},
		{args: []string{"version", "now"}, code: ExitUsage, stderr: "unexpected argument \"now\""},
	}
	for _, tt := range tests {
		code, stdout, stderr := run(t, tt.args...)
		require.Equal(t, tt.code, code, "%q: stderr %s", tt.args, stderr)
		require.Equal(t, tt.stdout == "", stdout == "", "%q: stdout %q", tt.args, stdout)
		require.Contains(t, stdout, tt.stdout, tt.args)
		require.Equal(t, tt.stderr == "", stderr == "", "%q: stderr %q", tt.args, stderr)
		require.Contains(t, stderr, tt.stderr, tt.args)
	}
}

// fakeInput is a stdin that is, or is not, a terminal.
type fakeInput struct {
	*strings.Reader
	terminal bool
}

func (f fakeInput) IsTerminal() bool { return f.terminal }

func TestConfirm(t *testing.T) {
	// Not parallel: it swaps stdin.
	saved := stdin
	t.Cleanup(func() { stdin = saved })
	tests := []struct {
		name     string
		yes      bool
		in       fakeInput
		code     int // exitCode of confirm's error
		declined bool
	}{
		{name: "-yes asks nothing", yes: true, in: fakeInput{strings.NewReader(""), false}, code: ExitOK},
		{name: "y on a terminal", in: fakeInput{strings.NewReader("y\n"), true}, code: ExitOK},
		{name: "Sí on a terminal", in: fakeInput{strings.NewReader(" Sí \n"), true}, code: ExitOK},
		{name: "n on a terminal", in: fakeInput{strings.NewReader("n\n"), true}, code: ExitFailed, declined: true},
		{name: "enter on a terminal", in: fakeInput{strings.NewReader("\n"), true}, code: ExitFailed, declined: true},
		{name: "end of input on a terminal", in: fakeInput{strings.NewReader(""), true}, code: ExitFailed, declined: true},
		{name: "not a terminal", in: fakeInput{strings.NewReader("y\n"), false}, code: ExitUsage},
	}
	for _, tt := range tests {
		stdin = tt.in
		var stderr bytes.Buffer
		err := confirm(tt.yes, &stderr, "Cancel consolidation 3?")
		require.Equal(t, tt.code, exitCode(err), "%s: %v", tt.name, err)
		require.Equal(t, tt.declined, err == errDeclined, tt.name)
		if tt.in.terminal && !tt.yes {
			require.Equal(t, "Cancel consolidation 3? [y/N] ", strings.TrimSuffix(stderr.String(), "\n"), tt.name)
		}
		if tt.code == ExitUsage {
			require.ErrorContains(t, err, "pass -yes")
			require.Equal(t, int(tt.in.Size()), tt.in.Len(), "%s: nothing is read", tt.name)
		}
	}
}

// TestUnreachableFailsFast: a coordinator nobody answers at is said at once,
// naming the flag to check, before any watch is tried (a watch is tried again
// only when a coordinator that answered goes away).
func TestUnreachableFailsFast(t *testing.T) {
	// Not parallel: it swaps backoff.
	waits := countBackoff(t)
	addr, err := launch.FreeAddr()
	require.NoError(t, err)
	code, _, stderr := run(t, "watch", "-addr", addr, "-plaintext", "-closing", "1")
	require.Equal(t, ExitFailed, code)
	require.Contains(t, stderr, "cierrectl watch: cannot reach the coordinator at "+addr+": nothing answers there: check -addr ")
	require.Zero(t, *waits)
}

// TestPlaintextOnlyWhenAsked: without TLS files cierrectl refuses to call unless
// given -plaintext, before it dials anything.
func TestPlaintextOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, "status", "-addr", "127.0.0.1:1", "-closing", "1")
	require.Equal(t, ExitFailed, code)
	require.Contains(t, stderr, "no TLS")
	require.Contains(t, stderr, "-plaintext")
}

// countBackoff replaces backoff by one that waits for nothing and counts.
func countBackoff(t *testing.T) *int {
	saved := backoff
	t.Cleanup(func() { backoff = saved })
	n := 0
	backoff = func(context.Context, int) error { n++; return nil }
	return &n
}

func TestJSONOutputIsOneLine(t *testing.T) {
	t.Parallel()
	msg := &consolidationv1.WatchConsolidationResponse{Final: &consolidationv1.Consolidation{ConsolidationId: 12,
		Estado: string(domain.EstadoConsolidados), ControlTotals: &consolidationv1.ControlTotals{LiquidoPagarCents: 123456789}}}
	yes := true
	var buf bytes.Buffer
	require.NoError(t, output{json: &yes}.print(&buf, msg, func(w io.Writer) { t.Fatal("text with -json") }))
	require.Equal(t, 1, strings.Count(buf.String(), "\n"))
	require.True(t, strings.HasSuffix(buf.String(), "\n"))
	var doc struct {
		Progress map[string]any `json:"progress"`
		Final    struct {
			ConsolidationID string `json:"consolidation_id"`
			Estado          string `json:"estado"`
			ChunksFailed    *int   `json:"chunks_failed"`
			ControlTotals   struct {
				Liquido string `json:"liquido_pagar_cents"`
			} `json:"control_totals"`
		} `json:"final"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	require.Equal(t, "12", doc.Final.ConsolidationID)
	require.Equal(t, "datos_consolidados", doc.Final.Estado)
	require.Equal(t, "123456789", doc.Final.ControlTotals.Liquido)
	require.NotNil(t, doc.Final.ChunksFailed, "zero fields are printed too")

	no := false
	buf.Reset()
	require.NoError(t, output{json: &no}.print(&buf, msg, func(w io.Writer) { io.WriteString(w, "text\n") }))
	require.Equal(t, "text\n", buf.String())
}

// TestBashCompletion loads the bash script and completes as bash would.
func TestBashCompletion(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	code, script, stderr := run(t, "completion", "bash")
	require.Equal(t, ExitOK, code, stderr)
	file := filepath.Join(t.TempDir(), "cierrectl.bash")
	require.NoError(t, os.WriteFile(file, []byte(script), 0o600))
	complete := func(words ...string) []string {
		t.Helper()
		script := `source "$0"; COMP_WORDS=("${@}"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _cierrectl; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, append([]string{"--norc", "-c", script, file}, words...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.Fields(string(out))
	}
	require.Equal(t, []string{"cancel", "check", "completion", "consolidate"}, complete("cierrectl", "c"))
	require.Equal(t, []string{"-chunk-size", "-closing"}, complete("cierrectl", "consolidate", "-c"))
	require.Equal(t, []string{"-yes"}, complete("cierrectl", "cancel", "-y"))
	require.Equal(t, []string{"-json"}, complete("cierrectl", "watch", "-j"))
	require.Equal(t, []string{"zsh"}, complete("cierrectl", "completion", "z"))
	require.Equal(t, []string{"version"}, complete("cierrectl", "help", "ve"))
}

func TestZshCompletion(t *testing.T) {
	t.Parallel()
	code, script, stderr := run(t, "completion", "zsh")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, script, "#compdef cierrectl\n")
	require.Contains(t, script, "compadd -- cancel check completion consolidate explain export health list status watch help version\n")
	require.Contains(t, script, `'-force[consolidate again a closing already in datos_consolidados]'`)
	require.Contains(t, script, `'-closing[closing id to consolidate]:int:'`)
	require.Contains(t, script, `'-tls-cert[client certificate (PEM) for mTLS]:string:_files'`)
	if zsh, err := exec.LookPath("zsh"); err == nil {
		out, err := exec.Command(zsh, "-n", "-c", script).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}

// TestProgressViewOffATerminal: without a terminal, progress is plain lines (no
// carriage return), one per change of the chunks done, with one percentage, the
// counts grouped as amounts are, and no ETA before a chunk is done.
func TestProgressViewOffATerminal(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	v := newProgressView(&b)
	require.False(t, v.terminal)
	v.show(&consolidationv1.Progress{TotalChunks: 1000, TotalEmployees: 20000, Elapsed: durationpb.New(time.Second)})
	v.show(&consolidationv1.Progress{TotalChunks: 1000, TotalEmployees: 20000, Elapsed: durationpb.New(2 * time.Second)})
	v.end()
	require.Equal(t, "  0.0 % chunks 0 of 1.000, employees 0 of 20.000 consolidated, elapsed 1s, ETA unknown\n", b.String())
	require.Equal(t, " 24.7 % chunks 247 of 1.000, employees 4.940 of 20.000 consolidated, elapsed 10s, ETA 30s",
		progressLine(&consolidationv1.Progress{ChunksDone: 247, TotalChunks: 1000, EmployeesDone: 4940, TotalEmployees: 20000,
			Percent: 24.7, Elapsed: durationpb.New(10 * time.Second), Eta: durationpb.New(30 * time.Second)}))
	require.Equal(t, "[===       ]", bar(33.3, 10))
	require.Equal(t, "[==========]", bar(100, 10))
}

func TestPlural(t *testing.T) {
	t.Parallel()
	require.Equal(t, "1 attempt", plural(1, "attempt"))
	require.Equal(t, "0 attempts", plural(0, "attempt"))
	require.Equal(t, "12.345 records", plural(int64(12345), "record"))
}
