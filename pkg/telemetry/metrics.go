package telemetry

import (
	"cmp"
	"runtime"

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
	b := config.BuildInfo()
	revision := cmp.Or(b.Revision, "unknown")
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		promclient.NewGaugeFunc(promclient.GaugeOpts{
			Name:        BuildInfoMetric,
			Help:        "The build serving: its module version, VCS revision and Go version; always 1.",
			ConstLabels: promclient.Labels{"version": b.Version, "revision": revision, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	return reg
}
