package telemetry

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/config"
)

func TestRegistryHasRuntimeProcessAndBuildInfo(t *testing.T) {
	t.Parallel()
	families, err := newRegistry().Gather()
	require.NoError(t, err)
	labels := map[string]map[string]string{}
	for _, f := range families {
		labels[f.GetName()] = map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[f.GetName()][l.GetName()] = l.GetValue()
		}
	}
	require.Contains(t, labels, "go_goroutines")
	require.Contains(t, labels, "process_resident_memory_bytes")
	require.Equal(t, config.Version, labels[BuildInfoMetric]["version"])
	require.Equal(t, runtime.Version(), labels[BuildInfoMetric]["goversion"])
	require.NotEmpty(t, labels[BuildInfoMetric]["revision"])
}
