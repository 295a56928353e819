package k8stest

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// scaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) the
// deployment uses, decoded strictly like every object.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount int `json:"minReplicaCount"`
		MaxReplicaCount int `json:"maxReplicaCount"`
		PollingInterval int `json:"pollingInterval"`
		CooldownPeriod  int `json:"cooldownPeriod"`
		Advanced        struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type     string `json:"type"`
			Metadata struct {
				ServerAddress       string `json:"serverAddress"`
				Query               string `json:"query"`
				Threshold           string `json:"threshold"`
				ActivationThreshold string `json:"activationThreshold"`
			} `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// prometheusRule is the part of the Prometheus Operator's PrometheusRule
// (monitoring.coreos.com/v1) the deployment uses.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// podMonitor is the part of the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1) the deployment uses.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// renderMonitored renders the default deployment with the monitoring and
// pending-chunk autoscaling components.
func renderMonitored(t *testing.T) rendered {
	t.Helper()
	return renderWith(t, "components/monitoring", "components/autoscaling-pending")
}

// renderWith renders the default deployment with more components (paths below
// deploy/k8s).
func renderWith(t *testing.T, components ...string) rendered {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: the rendered Kubernetes manifests are not checked")
	}
	dir, err := overlay(components...)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r, err := render(kubectl, dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// exportedMetrics reads testdata/exported_metrics.txt, the metric families the
// services export, which coordinator/e2e's TestMetricsExported holds equal to
// what their /metrics show: the names a query may use, with a histogram's
// _bucket, _sum and _count series and a summary's _sum and _count.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "exported_metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, typ, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			t.Fatalf("exported_metrics.txt: %q is not \"name type\"", sc.Text())
		}
		names[name] = true
		switch typ {
		case "histogram":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "summary":
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("exported_metrics.txt is empty")
	}
	return names
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdents    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promNotMetric = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev", "stdvar",
		"topk", "bottomk", "quantile", "count_values", "group"}
)

// metricNames are the metric names a PromQL expression selects: identifiers that
// are not functions, aggregations, keywords, label names (in matchers or
// grouping) or durations.
func metricNames(expr string) []string {
	expr = promStrings.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promRanges.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	var out []string
	for _, m := range promIdents.FindAllStringSubmatchIndex(expr, -1) {
		if m[2] >= 0 { // followed by "(": a function or an aggregation
			continue
		}
		word := expr[m[0]:m[1]]
		if m[0] > 0 && (expr[m[0]-1] == '.' || (expr[m[0]-1] >= '0' && expr[m[0]-1] <= '9')) {
			continue // part of a number: 1e3, 0.5
		}
		if slices.Contains(promNotMetric, strings.ToLower(word)) {
			continue
		}
		out = append(out, word)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum(consolidation_chunks_pending)`: {"consolidation_chunks_pending"},
		`histogram_quantile(0.9, sum by (le, estado) (rate(consolidation_run_seconds_bucket[6h])))`:                        {"consolidation_run_seconds_bucket"},
		`sum by (estado) (increase(x_total{estado=~"a|b", le="0.5"}[15m])) > 0`:                                            {"x_total"},
		`(max(workers_healthy) or vector(0)) < 1`:                                                                          {"workers_healthy"},
		`sum(rate(a_total{outcome!~"committed|busy"}[10m])) / on() group_left sum(rate(b_total[$__rate_interval])) > 2e-1`: {"a_total", "b_total"},
		`count by (version) (build_info) unless up offset 5m`:                                                              {"build_info", "up"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// TestMonitoringUsesExportedMetrics: every metric the dashboard's panels and the
// alert rules query is one the services export, and each alert of issue 14 is
// there.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	t.Parallel()
	r := renderMonitored(t)
	exported := exportedMetrics(t)
	check := func(where, expr string) {
		t.Helper()
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s: %q uses %s, which the services do not export (testdata/exported_metrics.txt)", where, expr, n)
			}
		}
	}

	cm := named[corev1.ConfigMap](t, r, "consolidation-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard's ConfigMap is not labelled for Grafana's sidecar: %v", cm.Labels)
	}
	var dashboard struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["consolidation-dashboard.json"]), &dashboard); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var queried []string
	for _, p := range dashboard.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			check("dashboard panel "+strconv.Quote(p.Title), tg.Expr)
			queried = append(queried, metricNames(tg.Expr)...)
		}
	}
	for _, want := range []string{"consolidation_runs_finished_total", "consolidation_chunk_attempts_total",
		"consolidation_worker_chunk_seconds_bucket", "consolidation_chunks_pending", "consolidation_worker_slots_busy",
		"consolidation_rpc_requests_total"} {
		if !slices.Contains(queried, want) {
			t.Errorf("no dashboard panel shows %s", want)
		}
	}

	rule := named[prometheusRule](t, r, "consolidation")
	var alerts []string
	for _, g := range rule.Spec.Groups {
		for _, rl := range g.Rules {
			check("alert "+rl.Alert, rl.Expr)
			alerts = append(alerts, rl.Alert)
			if rl.Labels["severity"] == "" || rl.Annotations["summary"] == "" {
				t.Errorf("alert %s has no severity or summary", rl.Alert)
			}
		}
	}
	slices.Sort(alerts)
	if want := []string{"ConsolidationChunkRetriesClimbing", "ConsolidationNoHealthyWorkers",
		"ConsolidationRunFailed", "ConsolidationRunPastDeadline"}; !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}

	so := named[scaledObject](t, r, "worker")
	for _, tr := range so.Spec.Triggers {
		check("ScaledObject trigger", tr.Metadata.Query)
	}
}

// TestPendingAutoscaling: the workers scale on pending chunks, in place of the
// CPU autoscaler, one worker per WORKER_MAX_IN_FLIGHT chunks; its maximum is the
// connection budget's (TestConnectionBudget).
func TestPendingAutoscaling(t *testing.T) {
	t.Parallel()
	r := renderMonitored(t)
	if hpas := all[autoscalingv2.HorizontalPodAutoscaler](r); len(hpas) != 0 {
		t.Errorf("the CPU autoscaler is still rendered beside KEDA's: %s", hpas[0].Name)
	}
	so := named[scaledObject](t, r, "worker")
	if so.Spec.ScaleTargetRef.Name != "worker" || len(so.Spec.Triggers) != 1 ||
		so.Spec.Triggers[0].Type != "prometheus" || !strings.Contains(so.Spec.Triggers[0].Metadata.Query, "consolidation_chunks_pending") {
		t.Fatalf("the ScaledObject does not scale the workers on pending chunks: %+v", so.Spec)
	}
	inFlight := setting(t, r, named[appsv1.Deployment](t, r, "worker"), "worker", "WORKER_MAX_IN_FLIGHT", defaultWorkerMaxInFlight)
	if threshold := so.Spec.Triggers[0].Metadata.Threshold; threshold != strconv.Itoa(inFlight) {
		t.Errorf("threshold %s: a worker takes WORKER_MAX_IN_FLIGHT %d chunks", threshold, inFlight)
	}
	if so.Spec.MinReplicaCount < 1 || so.Spec.MinReplicaCount > so.Spec.MaxReplicaCount {
		t.Errorf("replicas %d..%d", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
	}
}

// TestPodMonitorScrapesBothServices: the monitoring component scrapes the
// coordinators and the workers (the alerts' and the KEDA trigger's series), on a
// named port that each of them declares with METRICS_ADDR's number, at
// /metrics, and nothing else of the namespace.
func TestPodMonitorScrapesBothServices(t *testing.T) {
	t.Parallel()
	r := renderMonitored(t)
	pm := named[podMonitor](t, r, "consolidation")
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil {
		t.Fatalf("the PodMonitor's selector: %v", err)
	}
	_, port, _ := strings.Cut(named[corev1.ConfigMap](t, r, "consolidation-config").Data["METRICS_ADDR"], ":")
	if len(pm.Spec.PodMetricsEndpoints) == 0 {
		t.Fatal("the PodMonitor scrapes no endpoint")
	}
	scraped := map[string]bool{}
	for _, p := range podTemplates(r) {
		if !sel.Matches(labels.Set(p.meta.Labels)) {
			continue
		}
		scraped[p.meta.Labels["app"]] = true
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Path != "/metrics" {
				t.Errorf("the PodMonitor scrapes %s, not /metrics", ep.Path)
			}
			declared := slices.ContainsFunc(p.spec.Containers, func(c corev1.Container) bool {
				return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
					return cp.Name == ep.Port && strconv.Itoa(int(cp.ContainerPort)) == port
				})
			})
			if !declared {
				t.Errorf("%s declares no port %q numbered %s (METRICS_ADDR)", p.owner, ep.Port, port)
			}
		}
	}
	if want := map[string]bool{"coordinator": true, "worker": true}; !maps.Equal(scraped, want) {
		t.Errorf("the PodMonitor selects %v, want the coordinators and the workers", scraped)
	}
}
