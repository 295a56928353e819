package k8stest

import (
	"fmt"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The services' defaults, for a setting neither the ConfigMap nor the container
// sets (this module does not import the services): engine.DefaultPoolConns,
// engine.DefaultReadPoolConns and config.DefaultWorkerMaxInFlight.
const (
	defaultCoordinatorPoolConns = 16
	defaultCoordinatorReadConns = 4
	defaultWorkerMaxInFlight    = 2
)

// budgetAnnotation, on the ConfigMap consolidation-config, is the one
// connection budget every autoscaler's maximum derives from (deploy/README.md,
// "Scaling").
const budgetAnnotation = "consolidation.nominacl/connection-budget"

// TestConnectionBudget: in every render — the shipped ones, with KEDA's
// autoscaler, with trace export — the PostgreSQL connections the service can
// hold at its most fit the budget on consolidation-config, and the workers'
// maximum is the budget's: one more worker would not fit. At its most is every
// autoscaler's maximum (or the replicas of a Deployment none scales), plus what a
// rolling update adds (maxSurge, and maxUnavailable: a replaced pod keeps its
// connections while it drains, as its replacement starts), times each pod's
// pools, plus the migration Job's one connection (schema.Migrate holds one).
func TestConnectionBudget(t *testing.T) {
	t.Parallel()
	rs := map[string]rendered{}
	for name, r := range renders(t) {
		rs[name] = r
	}
	rs["monitoring+autoscaling-pending"] = renderMonitored(t)
	rs["otlp-egress"] = renderWith(t, "components/otlp-egress")
	for name, r := range rs {
		t.Run(name, func(t *testing.T) {
			budget, err := strconv.Atoi(named[corev1.ConfigMap](t, r, "consolidation-config").Annotations[budgetAnnotation])
			if err != nil {
				t.Fatalf("consolidation-config has no %s: %v", budgetAnnotation, err)
			}
			used, workerPool, breakdown := peakConnections(t, r)
			if used > budget {
				t.Errorf("%s = %d connections, over the budget of %d", breakdown, used, budget)
			}
			if used+workerPool <= budget {
				t.Errorf("%s = %d connections: one more worker (%d) still fits the budget of %d; derive the workers' maximum from it",
					breakdown, used, workerPool, budget)
			}
			t.Logf("%s = %d of %d", breakdown, used, budget)
		})
	}
}

// peakConnections is what the render's pods can hold at once at their most, one
// worker's pool, and the sum written out.
func peakConnections(t *testing.T, r rendered) (used, workerPool int, breakdown string) {
	t.Helper()
	coordinator, worker := named[appsv1.Deployment](t, r, "coordinator"), named[appsv1.Deployment](t, r, "worker")
	coordinatorPool := setting(t, r, coordinator, "coordinator", "DATABASE_MAX_CONNS", defaultCoordinatorPoolConns) +
		setting(t, r, coordinator, "coordinator", "DATABASE_READ_MAX_CONNS", defaultCoordinatorReadConns)
	workerPool = setting(t, r, worker, "worker", "WORKER_MAX_IN_FLIGHT", defaultWorkerMaxInFlight) + 2 // worker/cmd/worker: store.OpenPool(…, in flight + 2)
	coordinators, workers := peakPods(t, r, coordinator), peakPods(t, r, worker)
	migrations := 0
	for _, job := range all[batchv1.Job](r) {
		migrations += int(ptrOr(job.Spec.Parallelism, 1))
	}
	used = coordinators*coordinatorPool + workers*workerPool + migrations
	breakdown = fmt.Sprintf("%d coordinators × %d + %d workers × %d + %d migration", coordinators, coordinatorPool, workers, workerPool, migrations)
	return used, workerPool, breakdown
}

// peakPods is the most pods of a Deployment that can hold connections at once:
// its autoscaler's maximum (its replicas without one), plus a rolling update's
// maxSurge and maxUnavailable, resolved as the Deployment controller does
// (a percentage rounds up for the surge, down for the unavailable).
func peakPods(t *testing.T, r rendered, d *appsv1.Deployment) int {
	t.Helper()
	most, scalers := int(ptrOr(d.Spec.Replicas, 1)), 0
	for _, hpa := range all[autoscalingv2.HorizontalPodAutoscaler](r) {
		if hpa.Spec.ScaleTargetRef.Kind == "Deployment" && hpa.Spec.ScaleTargetRef.Name == d.Name {
			most, scalers = int(hpa.Spec.MaxReplicas), scalers+1
		}
	}
	for _, so := range all[scaledObject](r) {
		if so.Spec.ScaleTargetRef.Name == d.Name {
			most, scalers = so.Spec.MaxReplicaCount, scalers+1
		}
	}
	if scalers > 1 {
		t.Errorf("%d autoscalers scale the Deployment %s", scalers, d.Name)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return most
	}
	quarter := intstr.FromString("25%") // the API's default for both
	surge, unavailable := &quarter, &quarter
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		surge, unavailable = cmpOr(ru.MaxSurge, surge), cmpOr(ru.MaxUnavailable, unavailable)
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(surge, most, true)
	if err != nil {
		t.Fatalf("%s maxSurge: %v", d.Name, err)
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(unavailable, most, false)
	if err != nil {
		t.Fatalf("%s maxUnavailable: %v", d.Name, err)
	}
	return most + s + u
}

// setting is a numeric variable as a container sees it: its own env, else the
// ConfigMap consolidation-config, else the service's default.
func setting(t *testing.T, r rendered, d *appsv1.Deployment, containerName, name string, def int) int {
	t.Helper()
	v, ok := named[corev1.ConfigMap](t, r, "consolidation-config").Data[name]
	for _, e := range container(t, d, containerName).Env {
		if e.Name == name {
			v, ok = e.Value, true
		}
	}
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s of %s: %v", name, d.Name, err)
	}
	return n
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func cmpOr[T any](p, def *T) *T {
	if p == nil {
		return def
	}
	return p
}
