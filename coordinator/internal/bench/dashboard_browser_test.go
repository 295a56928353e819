package bench

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

func TestSummarizeTabs(t *testing.T) {
	ended := time.UnixMilli(1_000_000)
	at := func(ms int64, pct float64) [2]float64 { return [2]float64{float64(ms), pct} }
	live := tabState{Percent: 100, Final: true, Seen: [][2]float64{at(990_000, 10), at(995_000, 50), at(1_000_000, 90), at(1_000_400, 100)}, Protocol: "h2"}
	fewer := tabState{Percent: 100, Final: true, Seen: [][2]float64{at(999_000, 70), at(1_001_500, 100)}, Protocol: "http/1.1"}

	s, err := summarizeTabs([]tabState{live, fewer, live}, ended)
	if err != nil {
		t.Fatalf("tabs that saw the run and its end: %v", err)
	}
	want := TabsSeen{Tabs: 3, AtEnd: 3, LiveMin: 1, LiveMedian: 3, EndLag: 1500 * time.Millisecond, Protocols: "h2,http/1.1"}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}

	// A tab given nothing before the end (idle while the run went, its values
	// all after) and one that never showed the end are refused.
	late := tabState{Percent: 100, Final: true, Seen: [][2]float64{at(1_000_100, 100)}}
	stuck := tabState{Percent: 40, Seen: [][2]float64{at(995_000, 40)}}
	s, err = summarizeTabs([]tabState{live, late, stuck}, ended)
	if err == nil {
		t.Fatal("no error for a tab with no live progress and one stuck at 40 %")
	}
	for _, part := range []string{"tab 2 received no progress", "tab 3 shows 40 %"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
	if s.AtEnd != 2 || s.LiveMin != 0 {
		t.Errorf("summary %+v: want 2 tabs at the end and a live minimum of 0", s)
	}
}

// TestTreeCPU counts the CPU of a process's descendants: a shell whose child
// burns CPU while the shell waits for it.
func TestTreeCPU(t *testing.T) {
	if treeCPU(0) != 0 {
		t.Error("treeCPU(0) is not 0")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// The child spins until the file exists, so the reading is taken while it
	// is alive under the shell.
	dir := t.TempDir()
	cmd := exec.Command(sh, "-c", `sh -c 'while [ ! -e "$1" ]; do :; done' spin "$0"; :`, dir+"/stop")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = exec.Command("touch", dir+"/stop").Run()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(time.Minute)
	for treeCPU(cmd.Process.Pid) < 0.2 {
		if time.Now().After(deadline) {
			t.Fatalf("the spinning child used %.2f CPU s in a minute as read through its parent", treeCPU(cmd.Process.Pid))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if own := procCPU(cmd.Process.Pid); own >= treeCPU(cmd.Process.Pid) {
		t.Errorf("the tree's CPU s %.2f is not above the parent's own %.2f", treeCPU(cmd.Process.Pid), own)
	}
}

// TestDashboardTLSViewerOnlyReads checks the policy -dashboard-tls gives the
// coordinator: the tabs' viewer may read a run and nothing else, and the
// cluster's own callers keep what they had.
func TestDashboardTLSViewerOnlyReads(t *testing.T) {
	d, err := newDashboardTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(d.CoordinatorPolicy)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := grpcx.ParsePolicy(data)
	if err != nil {
		t.Fatalf("the policy written does not parse: %v", err)
	}
	const svc = "/consolidation.v1.ConsolidationService/"
	for method, allowed := range map[string]bool{
		"GetConsolidation": true, "WatchConsolidation": true, "ListConsolidations": true, "ExplainEmployee": true,
		"Consolidate": false, "CancelConsolidation": false, "ExportConsolidation": false,
	} {
		if got := policy.Allows(dashboardViewer, svc+method); got != allowed {
			t.Errorf("the viewer allowed %s: %v, want %v", method, got, allowed)
		}
	}
	if !policy.Allows(launch.AppIdentity, svc+"Consolidate") {
		t.Error("the payroll application may no longer consolidate")
	}
}
