package config

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Version is the version of the build, stamped by the image build
// (deploy/docker/Dockerfile) with
//
//	go build -ldflags "-X github.com/nominacl/consolidation/pkg/config.Version=v0.12.0"
//
// A build that does not stamp it takes the main module's version from the
// binary's build information, "(devel)" when there is none. Read it through
// BuildInfo.
var Version = "(devel)"

// Revision is the VCS revision of the build when the build information has none
// (a build with -buildvcs=false, or from a git worktree, which go build does not
// recognise); `make build` stamps it with
//
//	-ldflags "-X github.com/nominacl/consolidation/pkg/config.Revision=$(git rev-parse HEAD)"
var Revision = ""

// Build is what a binary knows of its own build: every binary's -version line,
// every log line's "version", the build-info metric and the metrics row's
// version_algoritmo come from it.
type Build struct {
	Version   string // the stamped Version, else the main module's version, else "(devel)"
	Revision  string // the VCS revision (a full commit hash), or "" when unknown
	Time      string // the revision's commit time (RFC 3339), or ""
	Modified  bool   // built from a working tree with uncommitted changes
	GoVersion string // the toolchain, "go1.26.8"
}

// BuildInfo reads the running binary's build.
func BuildInfo() Build {
	bi, _ := debug.ReadBuildInfo()
	return buildFrom(Version, Revision, bi)
}

// buildFrom resolves a Build from the stamped variables and the binary's build
// information (nil when the binary has none): what is stamped wins.
func buildFrom(version, revision string, bi *debug.BuildInfo) Build {
	b := Build{Version: version, Revision: revision}
	if bi == nil {
		if b.Version == "" {
			b.Version = "(devel)"
		}
		return b
	}
	b.GoVersion = bi.GoVersion
	if b.Version == "" || b.Version == "(devel)" {
		b.Version = bi.Main.Version
		if b.Version == "" {
			b.Version = "(devel)"
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Revision == "" {
				b.Revision = s.Value
			}
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the -version line after the binary's name:
// "v0.12.0 (revision 0123456789ab, 2026-03-01T10:00:00Z, modified) go1.26.8";
// "revision unknown" when the build recorded none.
func (b Build) String() string {
	details := []string{"revision unknown"}
	if b.Revision != "" {
		details[0] = "revision " + shortRevision(b.Revision)
	}
	if b.Time != "" {
		details = append(details, b.Time)
	}
	if b.Modified {
		details = append(details, "modified")
	}
	s := fmt.Sprintf("%s (%s)", b.Version, strings.Join(details, ", "))
	if b.GoVersion != "" {
		s += " " + b.GoVersion
	}
	return s
}

// MaxShortLen is the width of nomina_metrica_consolidacion.version_algoritmo,
// varchar(20).
const MaxShortLen = 20

// Short is the version in at most MaxShortLen characters, for the metrics row's
// version_algoritmo: the release ("v0.12.0") when it fits; else (a long version,
// or a development build, which says nothing of its code) the revision's first 12
// hex digits, "-dirty" added when the tree was modified; else the version cut to
// fit.
func (b Build) Short() string {
	if len(b.Version) <= MaxShortLen && (b.Version != "(devel)" || b.Revision == "") {
		return b.Version
	}
	if b.Revision != "" {
		s := shortRevision(b.Revision)
		if b.Modified {
			s += "-dirty"
		}
		return s
	}
	return b.Version[:MaxShortLen]
}

func shortRevision(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}
