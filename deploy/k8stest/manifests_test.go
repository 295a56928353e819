package k8stest

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestEveryPodMeetsRestricted: every pod template (Deployments, the StatefulSet,
// the migration Job), with its init containers, meets "restricted", in every render.
func TestEveryPodMeetsRestricted(t *testing.T) {
	t.Parallel()
	for name, r := range renders(t) {
		pods := podTemplates(r)
		if len(pods) < 3 {
			t.Errorf("%s: %d pod templates, want at least the coordinator, the workers and the migration", name, len(pods))
		}
		for _, p := range pods {
			for _, v := range restrictedViolations(p.spec) {
				t.Errorf("%s: %s: %s", name, p.owner, v)
			}
		}
	}
}

// TestNamespaceEnforcesRestricted: the one namespace enforces, audits and warns
// "restricted", and every namespaced object is in it.
func TestNamespaceEnforcesRestricted(t *testing.T) {
	t.Parallel()
	for name, r := range renders(t) {
		nss := all[corev1.Namespace](r)
		if len(nss) != 1 || nss[0].Name != namespace {
			t.Fatalf("%s: namespaces %v, want only %s", name, nss, namespace)
		}
		for _, mode := range []string{"enforce", "audit", "warn"} {
			if got := nss[0].Labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
				t.Errorf("%s: pod-security.kubernetes.io/%s = %q, want restricted", name, mode, got)
			}
		}
		for _, o := range r.objects {
			if _, ok := o.(*corev1.Namespace); ok {
				continue
			}
			if m := o.(metav1.Object); m.GetNamespace() != namespace {
				t.Errorf("%s: %T %s is in namespace %q, want %s", name, o, m.GetName(), m.GetNamespace(), namespace)
			}
		}
	}
}

// TestImagesArePinned: no image is :latest or untagged; the services' image is the
// one kustomize's images: entry pins.
func TestImagesArePinned(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"default":      "payroll-consolidation:v0.12.0",
		"overlays/tls": "registry.example.com/payroll/payroll-consolidation:v0.12.0",
		"overlays/dev": "payroll-consolidation:v0.12.0",
	}
	for name, r := range renders(t) {
		for _, p := range podTemplates(r) {
			for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
				if !pinned(c.Image) {
					t.Errorf("%s: %s container %s: image %q is not pinned", name, p.owner, c.Name, c.Image)
				}
				if p.meta.Labels["app"] == "coordinator" || p.meta.Labels["app"] == "worker" || p.meta.Labels["app"] == "consolidation-migrate" {
					if c.Image != want[name] {
						t.Errorf("%s: %s container %s: image %q, want %q", name, p.owner, c.Name, c.Image, want[name])
					}
				}
			}
		}
	}
}

// pinned reports whether an image names a digest, or a tag other than latest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	_, tag, ok := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	return ok && tag != "" && tag != "latest"
}

// TestProbesUseTheHealthPort: the kubelet probes both services with gRPC health on
// HEALTH_ADDR (8086, plaintext), which the shared ConfigMap sets, never on the
// gRPC port that TLS closes to it.
func TestProbesUseTheHealthPort(t *testing.T) {
	t.Parallel()
	for name, r := range renders(t) {
		if got := named[corev1.ConfigMap](t, r, "consolidation-config").Data["HEALTH_ADDR"]; got != ":8086" {
			t.Errorf("%s: HEALTH_ADDR = %q, want :8086", name, got)
		}
		if _, ok := named[corev1.ConfigMap](t, r, "consolidation-config").Data["PPROF_ADDR"]; ok {
			t.Errorf("%s: PPROF_ADDR is set: no profiler in production", name)
		}
		for _, svc := range []string{"coordinator", "worker"} {
			d := named[appsv1.Deployment](t, r, svc)
			c := container(t, d, svc)
			if !slices.ContainsFunc(c.EnvFrom, func(e corev1.EnvFromSource) bool {
				return e.ConfigMapRef != nil && e.ConfigMapRef.Name == "consolidation-config"
			}) {
				t.Errorf("%s: %s does not read consolidation-config", name, svc)
			}
			if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "health" && p.ContainerPort == 8086 }) {
				t.Errorf("%s: %s has no health port 8086", name, svc)
			}
			for kind, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if probe == nil || probe.GRPC == nil || probe.GRPC.Port != 8086 {
					t.Errorf("%s: %s %s probe %+v, want gRPC on 8086", name, svc, kind, probe)
				}
			}
		}
	}
}

// TestMigrationRunsAsTheOwnerAndServicesAsTheRuntimeRole: a Job migrates with the
// owner's URL from a Secret of its own; the services never see that Secret and
// connect with the run-time role's URL; nothing migrates in the services' pods.
func TestMigrationRunsAsTheOwnerAndServicesAsTheRuntimeRole(t *testing.T) {
	t.Parallel()
	secretOf := func(c corev1.Container, env string) string {
		for _, e := range c.Env {
			if e.Name == env && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			}
		}
		return ""
	}
	for name, r := range renders(t) {
		job := named[batchv1.Job](t, r, "consolidation-migrate")
		if n := len(job.Spec.Template.Spec.Containers); n != 1 {
			t.Fatalf("%s: the migration Job has %d containers", name, n)
		}
		m := job.Spec.Template.Spec.Containers[0]
		if !slices.Equal(m.Command, []string{"/coordinator", "migrate"}) {
			t.Errorf("%s: the migration Job runs %v", name, m.Command)
		}
		if got := secretOf(m, "DATABASE_URL"); got != "consolidation-migration/database-owner-url" {
			t.Errorf("%s: the migration's DATABASE_URL comes from %q", name, got)
		}
		for _, svc := range []string{"coordinator", "worker"} {
			d := named[appsv1.Deployment](t, r, svc)
			if got := secretOf(container(t, d, svc), "DATABASE_URL"); got != "consolidation-connections/database-url" {
				t.Errorf("%s: %s's DATABASE_URL comes from %q", name, svc, got)
			}
			if len(d.Spec.Template.Spec.InitContainers) != 0 {
				t.Errorf("%s: %s has init containers; the migration is the Job's", name, svc)
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "consolidation-migration" {
						t.Errorf("%s: %s reads the owner's Secret", name, svc)
					}
				}
			}
		}
		// Credentials live outside the repository, but for the development render.
		if secrets := all[corev1.Secret](r); len(secrets) != 0 && name != "overlays/dev" {
			t.Errorf("%s: renders %d Secrets", name, len(secrets))
		}
	}
}

// TestWorkersAutoscale: the HorizontalPodAutoscaler on the workers is in every render.
func TestWorkersAutoscale(t *testing.T) {
	t.Parallel()
	for name, r := range renders(t) {
		hpa := named[autoscalingv2.HorizontalPodAutoscaler](t, r, "worker")
		if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "worker" {
			t.Errorf("%s: the autoscaler scales %v", name, hpa.Spec.ScaleTargetRef)
		}
	}
}

// TestNetworkPolicies evaluates the rendered NetworkPolicies on the connections
// that matter: the coordinator's API from labelled caller namespaces only, the
// workers from the coordinator only, metrics from monitoring only, nothing to the
// health port (the kubelet's probes come from the node), and egress to DNS (the
// cluster's resolver, kube-dns in kube-system, only), to PostgreSQL (the services
// and the migration) and Redis (the coordinator) at the destinations the render
// configures and nowhere else, and to the workers (the coordinator) only.
func TestNetworkPolicies(t *testing.T) {
	t.Parallel()
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	coordinator, worker, migrate := ownPod("coordinator"), ownPod("worker"), ownPod("consolidation-migrate")
	caller := endpoint{namespace: "payroll-app", podLabels: map[string]string{"app": "django"},
		nsLabels: map[string]string{"consolidation.nominacl/caller": "true"}}
	stranger := endpoint{namespace: "elsewhere", podLabels: map[string]string{"app": "django"}, nsLabels: map[string]string{}}
	monitoring := endpoint{namespace: "monitoring", podLabels: map[string]string{"app": "prometheus"},
		nsLabels: map[string]string{"consolidation.nominacl/monitoring": "true"}}
	outside := endpoint{external: true, ip: "198.51.100.7"}
	system := map[string]string{"kubernetes.io/metadata.name": "kube-system"}
	kubeDNS := endpoint{namespace: "kube-system", nsLabels: system, podLabels: map[string]string{"k8s-app": "kube-dns"}}
	otherSystem := endpoint{namespace: "kube-system", nsLabels: system, podLabels: map[string]string{"k8s-app": "metrics-server"}}

	tests := []expectation{
		{connection{caller, coordinator, tcp, 50051}, true},
		{connection{stranger, coordinator, tcp, 50051}, false},
		{connection{worker, coordinator, tcp, 50051}, false},
		{connection{monitoring, coordinator, tcp, 50051}, false},
		{connection{outside, coordinator, tcp, 50051}, false},
		{connection{coordinator, worker, tcp, 50052}, true},
		{connection{caller, worker, tcp, 50052}, false},
		{connection{worker, worker, tcp, 50052}, false},
		{connection{migrate, worker, tcp, 50052}, false},
		{connection{monitoring, coordinator, tcp, 9090}, true},
		{connection{monitoring, worker, tcp, 9090}, true},
		{connection{caller, coordinator, tcp, 9090}, false},
		{connection{caller, worker, tcp, 9090}, false},
		{connection{caller, coordinator, tcp, 8086}, false},
		{connection{stranger, worker, tcp, 8086}, false},
		{connection{coordinator, kubeDNS, udp, 53}, true},
		{connection{worker, kubeDNS, tcp, 53}, true},
		{connection{migrate, kubeDNS, udp, 53}, true},
		// DNS goes to the cluster's resolver only.
		{connection{coordinator, outside, udp, 53}, false},
		{connection{worker, outside, tcp, 53}, false},
		{connection{migrate, outside, tcp, 53}, false},
		{connection{worker, otherSystem, udp, 53}, false},
		// The stores' ports lead nowhere but to the stores (below).
		{connection{coordinator, outside, tcp, 5432}, false},
		{connection{worker, outside, tcp, 5432}, false},
		{connection{migrate, outside, tcp, 5432}, false},
		{connection{coordinator, outside, tcp, 6379}, false},
		{connection{coordinator, otherSystem, tcp, 5432}, false},
		{connection{coordinator, outside, tcp, 443}, false},
		{connection{worker, outside, tcp, 443}, false},
		{connection{worker, coordinator, tcp, 50051}, false},
		{connection{worker, caller, tcp, 8080}, false},
		{connection{caller, migrate, tcp, 9090}, false},
		// No trace export without components/otlp-egress.
		{connection{coordinator, otlpCollector, tcp, 4317}, false},
		{connection{worker, otlpCollector, tcp, 4318}, false},
	}
	for name, r := range renders(t) {
		checkConnections(t, name, r, tests)
		postgres, redis := storeEndpoints(name)
		checkConnections(t, name, r, storeExpectations(postgres, redis))
		deny := named[networkingv1.NetworkPolicy](t, r, "default-deny")
		if len(deny.Spec.PodSelector.MatchLabels)+len(deny.Spec.PodSelector.MatchExpressions) != 0 ||
			len(deny.Spec.Ingress)+len(deny.Spec.Egress) != 0 || len(deny.Spec.PolicyTypes) != 2 {
			t.Errorf("%s: default-deny is not a deny of everything: %+v", name, deny.Spec)
		}
		checkEgressNamesDestinations(t, name, r)
	}

	// In the development render PostgreSQL and Redis are pods of the namespace,
	// which take connections from the services only and send nothing out.
	postgres, redis := storeEndpoints("overlays/dev")
	checkConnections(t, "overlays/dev", renders(t)["overlays/dev"], []expectation{
		{connection{caller, postgres, tcp, 5432}, false},
		{connection{caller, redis, tcp, 6379}, false},
		{connection{postgres, outside, tcp, 443}, false},
		{connection{redis, outside, tcp, 443}, false},
	})
}

// TestOTLPEgress: components/otlp-egress points both services at a collector
// over OTLP/gRPC and opens exactly that port to the collector's pods, and no
// more; without it no trace leaves (TestNetworkPolicies).
func TestOTLPEgress(t *testing.T) {
	t.Parallel()
	r := renderWith(t, "components/otlp-egress")
	cfg := named[corev1.ConfigMap](t, r, "consolidation-config").Data
	target, err := url.Parse(cfg["OTEL_EXPORTER_OTLP_ENDPOINT"])
	if err != nil || target.Port() == "" {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT %q: %v, want a URL with a port", cfg["OTEL_EXPORTER_OTLP_ENDPOINT"], err)
	}
	if cfg["OTEL_EXPORTER_OTLP_PROTOCOL"] != "grpc" {
		t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL = %q, want grpc", cfg["OTEL_EXPORTER_OTLP_PROTOCOL"])
	}
	port, _ := strconv.Atoi(target.Port())
	tcp := corev1.ProtocolTCP
	coordinator, worker, migrate := ownPod("coordinator"), ownPod("worker"), ownPod("consolidation-migrate")
	elsewhere := endpoint{namespace: "observability", nsLabels: otlpCollector.nsLabels, podLabels: map[string]string{"app": "grafana"}}
	checkConnections(t, "otlp-egress", r, []expectation{
		{connection{coordinator, otlpCollector, tcp, int32(port)}, true},
		{connection{worker, otlpCollector, tcp, int32(port)}, true},
		{connection{migrate, otlpCollector, tcp, int32(port)}, false},
		{connection{coordinator, otlpCollector, tcp, 4318}, port == 4318},
		{connection{coordinator, elsewhere, tcp, int32(port)}, false},
		{connection{worker, endpoint{external: true, ip: "198.51.100.7"}, tcp, int32(port)}, false},
	})
	checkEgressNamesDestinations(t, "otlp-egress", r)
}

// ownPod is a pod of the deployment's namespace with the label app.
func ownPod(app string) endpoint {
	return endpoint{namespace: namespace, nsLabels: map[string]string{"kubernetes.io/metadata.name": namespace},
		podLabels: map[string]string{"app": app}}
}

// otlpCollector is an OpenTelemetry Collector where components/otlp-egress
// expects it: the pods app.kubernetes.io/name=opentelemetry-collector of the
// namespace observability.
var otlpCollector = endpoint{namespace: "observability",
	nsLabels:  map[string]string{"kubernetes.io/metadata.name": "observability"},
	podLabels: map[string]string{"app.kubernetes.io/name": "opentelemetry-collector"}}

// storeEndpoints are where each render puts PostgreSQL and Redis: the base's
// placeholders (TEST-NET-1) by default, the addresses deploy/overlays/tls sets,
// the development pods of components/dev-dependencies.
func storeEndpoints(render string) (postgres, redis endpoint) {
	switch render {
	case "overlays/tls":
		return endpoint{external: true, ip: "10.20.30.40"}, endpoint{namespace: "redis",
			nsLabels:  map[string]string{"kubernetes.io/metadata.name": "redis"},
			podLabels: map[string]string{"app.kubernetes.io/name": "redis"}}
	case "overlays/dev":
		return ownPod("postgres"), ownPod("redis")
	}
	return endpoint{external: true, ip: "192.0.2.1"}, endpoint{external: true, ip: "192.0.2.2"}
}

// storeExpectations: PostgreSQL from the services and the migration, Redis from
// the coordinator alone, each on its own port only.
func storeExpectations(postgres, redis endpoint) []expectation {
	tcp := corev1.ProtocolTCP
	coordinator, worker, migrate := ownPod("coordinator"), ownPod("worker"), ownPod("consolidation-migrate")
	near := endpoint{external: true, ip: "10.20.30.41"} // beside the overlay's PostgreSQL
	return []expectation{
		{connection{coordinator, postgres, tcp, 5432}, true},
		{connection{worker, postgres, tcp, 5432}, true},
		{connection{migrate, postgres, tcp, 5432}, true},
		{connection{coordinator, redis, tcp, 6379}, true},
		{connection{worker, redis, tcp, 6379}, false},
		{connection{migrate, redis, tcp, 6379}, false},
		{connection{coordinator, postgres, tcp, 6379}, false},
		{connection{coordinator, redis, tcp, 5432}, false},
		{connection{coordinator, postgres, tcp, 443}, false},
		{connection{worker, near, tcp, 5432}, false},
	}
}

// checkEgressNamesDestinations: every egress rule of every policy names where it
// goes; a rule with ports and no `to` would open those ports to the whole
// Internet.
func checkEgressNamesDestinations(t *testing.T, name string, r rendered) {
	t.Helper()
	for _, np := range all[networkingv1.NetworkPolicy](r) {
		for i, rule := range np.Spec.Egress {
			if len(rule.To) == 0 {
				t.Errorf("%s: NetworkPolicy %s egress rule %d has no destination", name, np.Name, i)
			}
			for _, peer := range rule.To {
				if peer.IPBlock != nil && strings.HasSuffix(peer.IPBlock.CIDR, "/0") {
					t.Errorf("%s: NetworkPolicy %s egress rule %d goes to %s", name, np.Name, i, peer.IPBlock.CIDR)
				}
			}
		}
	}
}

// expectation is a connection and whether the policies must allow it.
type expectation struct {
	c    connection
	want bool
}

// checkConnections evaluates the NetworkPolicies of a render on each connection.
func checkConnections(t *testing.T, name string, r rendered, tests []expectation) {
	t.Helper()
	p := policies{t: t, list: all[networkingv1.NetworkPolicy](r)}
	for _, tt := range tests {
		if got := p.allows(tt.c); got != tt.want {
			t.Errorf("%s: %v: allowed %v, want %v", name, tt.c, got, tt.want)
		}
	}
}

// authzPolicy is AUTHZ_POLICY_FILE's shape (docs/security-model.md), decoded strictly.
type authzPolicy struct {
	Rules []struct {
		Identities []string `json:"identities"`
		Methods    []string `json:"methods"`
	} `json:"rules"`
}

// allows reports whether identity may call the full method name, with `*` as the
// last segment matching any method of a service.
func (p authzPolicy) allows(identity, method string) bool {
	for _, rule := range p.Rules {
		if !slices.Contains(rule.Identities, identity) {
			continue
		}
		for _, m := range rule.Methods {
			if m == method || strings.HasSuffix(m, "/*") && strings.HasPrefix(method, strings.TrimSuffix(m, "*")) {
				return true
			}
		}
	}
	return false
}

// TestTLSComponent: with the component, both services get the certificate, key, CA
// and policy files by the variables of docs/security-model.md#transport, from the cert-manager Secret and the
// generated policy ConfigMap, mounted whole (no subPath: rotated files show up);
// the Certificates carry the identities; the policies admit exactly the callers
// docs/security-model.md#identity names; the issuer is the component's default or the overlay's own.
// Without the component there is none of it.
func TestTLSComponent(t *testing.T) {
	t.Parallel()
	rs := renders(t)
	identity := map[string]string{"coordinator": "spiffe://payroll/coordinator", "worker": "spiffe://payroll/worker"}
	files := map[string]string{
		"TLS_CERT_FILE":     "/etc/consolidation/tls/tls.crt",
		"TLS_KEY_FILE":      "/etc/consolidation/tls/tls.key",
		"TLS_CA_FILE":       "/etc/consolidation/tls/ca.crt",
		"AUTHZ_POLICY_FILE": "/etc/consolidation/authz/policy.yaml",
	}
	// A namespaced Issuer: a ClusterIssuer would sign any identity for any namespace.
	issuers := map[string]string{"default": "Issuer/payroll-consolidation-ca", "overlays/tls": "Issuer/payroll-ca"}
	for name, issuer := range issuers {
		r := rs[name]
		for svc, id := range identity {
			d := named[appsv1.Deployment](t, r, svc)
			c := container(t, d, svc)
			for env, path := range files {
				if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == env && e.Value == path }) {
					t.Errorf("%s: %s has no %s=%s", name, svc, env, path)
				}
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				if m.SubPath != "" {
					t.Errorf("%s: %s mounts %s with a subPath: rotated files would not show", name, svc, m.MountPath)
				}
				mounts[m.MountPath] = m.Name
			}
			volumes := map[string]corev1.Volume{}
			for _, v := range d.Spec.Template.Spec.Volumes {
				volumes[v.Name] = v
			}
			tls := volumes[mounts["/etc/consolidation/tls"]]
			if tls.Secret == nil || tls.Secret.SecretName != svc+"-tls" {
				t.Errorf("%s: %s's /etc/consolidation/tls is %+v, want the Secret %s-tls", name, svc, tls.VolumeSource, svc)
			}
			authz := volumes[mounts["/etc/consolidation/authz"]]
			if authz.ConfigMap == nil || !strings.HasPrefix(authz.ConfigMap.Name, svc+"-authz-") {
				t.Fatalf("%s: %s's /etc/consolidation/authz is %+v, want the ConfigMap %s-authz", name, svc, authz.VolumeSource, svc)
			}
			var policy authzPolicy
			raw := named[corev1.ConfigMap](t, r, authz.ConfigMap.Name).Data["policy.yaml"]
			if err := yaml.UnmarshalStrict([]byte(raw), &policy); err != nil {
				t.Fatalf("%s: %s's policy: %v", name, svc, err)
			}
			checkPolicy(t, name, svc, policy)

			cert := named[certificate](t, r, svc)
			if cert.Spec.SecretName != svc+"-tls" || !slices.Equal(cert.Spec.URIs, []string{id}) {
				t.Errorf("%s: Certificate %s: Secret %s, URIs %v", name, svc, cert.Spec.SecretName, cert.Spec.URIs)
			}
			if !slices.Contains(cert.Spec.DNSNames, svc) || !slices.Contains(cert.Spec.Usages, "server auth") {
				t.Errorf("%s: Certificate %s: DNS names %v, usages %v", name, svc, cert.Spec.DNSNames, cert.Spec.Usages)
			}
			if got := cert.Spec.IssuerRef.Kind + "/" + cert.Spec.IssuerRef.Name; got != issuer || cert.Spec.IssuerRef.Group != "cert-manager.io" {
				t.Errorf("%s: Certificate %s is issued by %s (%s), want %s", name, svc, got, cert.Spec.IssuerRef.Group, issuer)
			}
		}
		if !slices.Contains(named[certificate](t, r, "coordinator").Spec.Usages, "client auth") {
			t.Errorf("%s: the coordinator's certificate cannot authenticate it to the workers", name)
		}
	}
	// Secure by default: only the development overlay serves plaintext, and says so.
	for name, r := range rs {
		allowed := named[corev1.ConfigMap](t, r, "consolidation-config").Data["ALLOW_PLAINTEXT"] == "true"
		for _, svc := range []string{"coordinator", "worker"} {
			for _, e := range container(t, named[appsv1.Deployment](t, r, svc), svc).Env {
				allowed = allowed || (e.Name == "ALLOW_PLAINTEXT" && e.Value == "true")
			}
		}
		if allowed != (name == "overlays/dev") {
			t.Errorf("%s: ALLOW_PLAINTEXT=true is %v; only overlays/dev may set it", name, allowed)
		}
	}
	for _, name := range []string{"overlays/dev"} {
		if certs := all[certificate](rs[name]); len(certs) != 0 {
			t.Errorf("%s: renders Certificates without the tls component", name)
		}
		for _, svc := range []string{"coordinator", "worker"} {
			for _, e := range container(t, named[appsv1.Deployment](t, rs[name], svc), svc).Env {
				if _, ok := files[e.Name]; ok {
					t.Errorf("%s: %s sets %s without the tls component", name, svc, e.Name)
				}
			}
		}
	}
}

// checkPolicy: the coordinator admits the application and operators to every
// ConsolidationService method and reflection, and nobody else; a worker admits
// ProcessChunk from the coordinator alone.
func checkPolicy(t *testing.T, render, svc string, p authzPolicy) {
	t.Helper()
	const (
		app, ops, coordinator, worker = "spiffe://payroll/app", "spiffe://payroll/ops", "spiffe://payroll/coordinator", "spiffe://payroll/worker"
		stranger                      = "spiffe://payroll/dashboard"
		reflection                    = "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
		processChunk                  = "consolidation.v1.WorkerService/ProcessChunk"
	)
	api := []string{"Consolidate", "GetConsolidation", "WatchConsolidation", "CancelConsolidation"}
	type call struct {
		identity, method string
		want             bool
	}
	var calls []call
	switch svc {
	case "coordinator":
		for _, m := range api {
			method := "consolidation.v1.ConsolidationService/" + m
			calls = append(calls, call{app, method, true}, call{ops, method, true},
				call{stranger, method, false}, call{worker, method, false}, call{coordinator, method, false})
		}
		calls = append(calls, call{app, reflection, true}, call{ops, reflection, true}, call{stranger, reflection, false},
			call{app, processChunk, false})
	case "worker":
		calls = append(calls, call{coordinator, processChunk, true}, call{app, processChunk, false},
			call{ops, processChunk, false}, call{worker, processChunk, false}, call{stranger, processChunk, false},
			call{ops, reflection, true}, call{app, reflection, false},
			call{coordinator, "consolidation.v1.ConsolidationService/Consolidate", false})
	}
	for _, c := range calls {
		if got := p.allows(c.identity, c.method); got != c.want {
			t.Errorf("%s: %s's policy lets %s call %s: %v, want %v", render, svc, c.identity, c.method, got, c.want)
		}
	}
}

func TestPinned(t *testing.T) {
	t.Parallel()
	for image, want := range map[string]bool{
		"payroll-consolidation:v0.12.0":              true,
		"registry:5000/payroll/consolidation:v1":     true,
		"registry:5000/payroll/consolidation":        false,
		"postgres":                                   false,
		"postgres:latest":                            false,
		"postgres@sha256:0123456789abcdef0123456789": true,
	} {
		if got := pinned(image); got != want {
			t.Errorf("pinned(%q) = %v, want %v", image, got, want)
		}
	}
}
