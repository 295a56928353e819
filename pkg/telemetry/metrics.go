package telemetry

import (
	"runtime"
	"runtime/debug"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nominacl/consolidation/pkg/config"
)

// ChunkSecondsBuckets are the bucket bounds, in seconds, of histograms of a
// chunk's time: from a small chunk on an idle database (tens of milliseconds) to
// the hard per-chunk limit (CHUNK_HARD_TIMEOUT, 600 s).
var ChunkSecondsBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// RunSecondsBuckets are the bucket bounds, in seconds, of histograms of a run's
// time: from a closing of a few employees (a second) to RUN_TIMEOUT's default
// (two hours).
var RunSecondsBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

// BuildInfoMetric is the name of the gauge, always 1, whose labels say which
// build serves: version, revision and goversion.
const BuildInfoMetric = "consolidation_build_info"

// newRegistry is the Prometheus registry /metrics serves: the OpenTelemetry
// instruments go in through the exporter; beside them the Go runtime's (go_*),
// the process's (process_*) and the build's (consolidation_build_info).
func newRegistry() *promclient.Registry {
	reg := promclient.NewRegistry()
	version, revision, goVersion := BuildInfo()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		promclient.NewGaugeFunc(promclient.GaugeOpts{
			Name:        BuildInfoMetric,
			Help:        "The build serving: its module version, VCS revision and Go version; always 1.",
			ConstLabels: promclient.Labels{"version": version, "revision": revision, "goversion": goVersion},
		}, func() float64 { return 1 }),
	)
	return reg
}

// BuildInfo is the running binary's version (config.Version, stamped by the
// image build, as in every log line; else the module version Go embeds), VCS
// revision ("unknown" when the build did not stamp one, as with -buildvcs=false)
// and Go version.
func BuildInfo() (version, revision, goVersion string) {
	version, revision, goVersion = config.Version, "unknown", runtime.Version()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision, goVersion
	}
	if version == "(devel)" && info.Main.Version != "" {
		version = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return version, revision, goVersion
}
