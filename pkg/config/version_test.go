package config

import (
	"encoding/json"
	"io"
	"os"
	"runtime/debug"
	"testing"
)

// TestLogLinesCarryTheVersion: a log line names the service and the version the
// build was stamped with. Not parallel: it swaps os.Stderr.
func TestLogLinesCarryTheVersion(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, version := os.Stderr, Version
	os.Stderr, Version = w, "v9.8.7"
	defer func() { os.Stderr, Version = stderr, version }()

	Logger("worker", "info").Info("started")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(out, &line); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if line["service"] != "worker" || line["version"] != "v9.8.7" {
		t.Fatalf("log line %s, want service worker and version v9.8.7", out)
	}
}

func TestBuildFrom(t *testing.T) {
	t.Parallel()
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
		{Key: "vcs.time", Value: "2026-03-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	pseudo := "v0.0.0-20260301100000-0123456789ab+dirty"
	tests := []struct {
		name              string
		version, revision string // stamped
		bi                *debug.BuildInfo
		want              Build
		line, short       string
	}{
		{name: "no build information", version: "(devel)",
			want: Build{Version: "(devel)"}, line: "(devel) (revision unknown)", short: "(devel)"},
		{name: "nothing stamped, no VCS", version: "(devel)",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want: Build{Version: "(devel)", GoVersion: "go1.26.8"}, line: "(devel) (revision unknown) go1.26.8", short: "(devel)"},
		{name: "the module's pseudo-version and VCS", version: "(devel)",
			bi:    &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: pseudo}, Settings: vcs},
			want:  Build{Version: pseudo, Revision: rev, Time: "2026-03-01T10:00:00Z", Modified: true, GoVersion: "go1.26.8"},
			line:  pseudo + " (revision 0123456789ab, 2026-03-01T10:00:00Z, modified) go1.26.8",
			short: "0123456789ab-dirty"},
		{name: "a stamped release wins", version: "v0.12.0",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: pseudo}, Settings: vcs[:2]},
			want: Build{Version: "v0.12.0", Revision: rev, GoVersion: "go1.26.8"},
			line: "v0.12.0 (revision 0123456789ab) go1.26.8", short: "v0.12.0"},
		{name: "a stamped revision wins", version: "v0.12.0", revision: "fedcba9876543210",
			bi:   &debug.BuildInfo{Settings: vcs[:2]},
			want: Build{Version: "v0.12.0", Revision: "fedcba9876543210"}, line: "v0.12.0 (revision fedcba987654)", short: "v0.12.0"},
		{name: "a long stamped version without a revision is cut", version: "v1.2.3-rc.1+build.20260301",
			want: Build{Version: "v1.2.3-rc.1+build.20260301"}, line: "v1.2.3-rc.1+build.20260301 (revision unknown)",
			short: "v1.2.3-rc.1+build.20"},
	}
	for _, tt := range tests {
		b := buildFrom(tt.version, tt.revision, tt.bi)
		if b != tt.want {
			t.Errorf("%s: buildFrom = %+v, want %+v", tt.name, b, tt.want)
		}
		if got := b.String(); got != tt.line {
			t.Errorf("%s: String() = %q, want %q", tt.name, got, tt.line)
		}
		if got := b.Short(); got != tt.short || len(got) > MaxShortLen {
			t.Errorf("%s: Short() = %q, want %q (at most %d characters)", tt.name, got, tt.short, MaxShortLen)
		}
	}
}
