package k8stest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// namespace is where every object of the deployment goes.
const namespace = "payroll-consolidation"

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1) the
// deployment uses. cert-manager's types are not in k8s.io/api; decoding is strict,
// so a field the manifests use must be declared here, and a misspelt one fails.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName  string `json:"secretName"`
		Duration    string `json:"duration"`
		RenewBefore string `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		Usages    []string `json:"usages"`
		URIs      []string `json:"uris"`
		DNSNames  []string `json:"dnsNames"`
		IssuerRef struct {
			Group string `json:"group"`
			Kind  string `json:"kind"`
			Name  string `json:"name"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// newObject returns an empty object of the Go type of apiVersion and kind; every
// kind the deployment may render is listed, and any other is an error.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "cert-manager.io/v1 Certificate":
		return &certificate{}, nil
	case "keda.sh/v1alpha1 ScaledObject":
		return &scaledObject{}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &prometheusRule{}, nil
	case "monitoring.coreos.com/v1 PodMonitor":
		return &podMonitor{}, nil
	}
	return nil, fmt.Errorf("unexpected kind %s %s", apiVersion, kind)
}

// rendered is the output of one kubectl kustomize, decoded.
type rendered struct {
	objects []any
}

// render runs kubectl kustomize on dir and decodes every object strictly into its
// Kubernetes API type: an unknown or misspelt field, a duplicate field or an
// unexpected kind is an error.
func render(kubectl, dir string) (rendered, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return rendered{}, fmt.Errorf("kubectl kustomize %s: %w\n%s", dir, err, stderr.String())
	}
	var r rendered
	for _, doc := range strings.Split(stdout.String(), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return rendered{}, fmt.Errorf("%s: reading an object's kind: %w\n%s", dir, err, doc)
		}
		obj, err := newObject(meta.APIVersion, meta.Kind)
		if err != nil {
			return rendered{}, fmt.Errorf("%s: %w", dir, err)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return rendered{}, fmt.Errorf("%s: decoding %s: %w\n%s", dir, meta.Kind, err, doc)
		}
		r.objects = append(r.objects, obj)
	}
	if len(r.objects) == 0 {
		return rendered{}, fmt.Errorf("%s: kubectl kustomize rendered nothing", dir)
	}
	return r, nil
}

// renderAll renders, once for all the tests: the default deployment (deploy/k8s,
// with the TLS component and its default issuer), the shipped production example
// (deploy/overlays/tls: its issuer and registry), and the development one with
// PostgreSQL and Redis in the cluster (deploy/overlays/dev).
var renderAll = sync.OnceValues(func() (map[string]rendered, error) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return nil, errNoKubectl
	}
	dirs := map[string]string{
		"default":      filepath.Join("..", "k8s"),
		"overlays/tls": filepath.Join("..", "overlays", "tls"),
		"overlays/dev": filepath.Join("..", "overlays", "dev"),
	}
	out := map[string]rendered{}
	for name, dir := range dirs {
		if out[name], err = render(kubectl, dir); err != nil {
			return nil, err
		}
	}
	return out, nil
})

var errNoKubectl = errors.New("kubectl is not installed")

// renders returns the renders of renderAll, skipping the test only when kubectl is
// missing.
func renders(t *testing.T) map[string]rendered {
	t.Helper()
	rs, err := renderAll()
	if errors.Is(err, errNoKubectl) {
		t.Skip("kubectl is not installed: the rendered Kubernetes manifests are not checked")
	}
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// overlay writes a kustomization in a new temporary directory that takes
// deploy/k8s and the named components (paths below deploy/k8s), by relative paths
// (kustomize refuses absolute ones), and returns the directory.
func overlay(components ...string) (string, error) {
	dir, err := os.MkdirTemp("", "k8stest-")
	if err != nil {
		return "", err
	}
	base, err := filepath.Abs(filepath.Join("..", "k8s"))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources:\n  - %s\ncomponents:\n", namespace, rel)
	for _, c := range components {
		fmt.Fprintf(&b, "  - %s\n", filepath.Join(rel, c))
	}
	return dir, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o600)
}

// all returns the rendered objects of type T.
func all[T any](r rendered) []*T {
	var out []*T
	for _, o := range r.objects {
		if v, ok := o.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// named returns the one rendered object of type T with that name, failing the test
// when there is none.
func named[T any](t *testing.T, r rendered, name string) *T {
	t.Helper()
	for _, o := range all[T](r) {
		if any(o).(metav1.Object).GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %q rendered", zero, name)
	return nil
}

// podTemplate is a workload's pod template with the workload's kind and name.
type podTemplate struct {
	owner string
	spec  corev1.PodSpec
	meta  metav1.ObjectMeta
}

// podTemplates returns the pod template of every workload rendered.
func podTemplates(r rendered) []podTemplate {
	var out []podTemplate
	for _, o := range r.objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			out = append(out, podTemplate{"Deployment/" + v.Name, v.Spec.Template.Spec, v.Spec.Template.ObjectMeta})
		case *appsv1.StatefulSet:
			out = append(out, podTemplate{"StatefulSet/" + v.Name, v.Spec.Template.Spec, v.Spec.Template.ObjectMeta})
		case *batchv1.Job:
			out = append(out, podTemplate{"Job/" + v.Name, v.Spec.Template.Spec, v.Spec.Template.ObjectMeta})
		}
	}
	return out
}

// container returns the named container of a Deployment's pod template.
func container(t *testing.T, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return corev1.Container{}
}

func intOrString(n int) intstr.IntOrString { return intstr.FromInt32(int32(n)) }
