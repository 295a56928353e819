package k8stest

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// restrictedViolations lists how a pod spec falls short of the "restricted" Pod
// Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
// and of this deployment's own rules on top of it: a numeric non-root user and
// group, a read-only root file system and no service-account token.
func restrictedViolations(spec corev1.PodSpec) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		add("automountServiceAccountToken is not false")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC || spec.HostUsers != nil && *spec.HostUsers {
		add("shares a host namespace")
	}
	sc := spec.SecurityContext
	if sc == nil {
		sc = &corev1.PodSecurityContext{}
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		add("pod: runAsNonRoot is not true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		add("pod: runAsUser is not a non-zero user")
	}
	if sc.RunAsGroup == nil || *sc.RunAsGroup == 0 {
		add("pod: runAsGroup is not a non-zero group")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		add("pod: seccompProfile is not RuntimeDefault")
	}
	if len(sc.Sysctls) > 0 {
		add("pod: sets sysctls")
	}
	allowedVolumes := func(vol corev1.Volume) bool {
		s := vol.VolumeSource
		return s.ConfigMap != nil || s.Secret != nil || s.EmptyDir != nil || s.Projected != nil ||
			s.DownwardAPI != nil || s.PersistentVolumeClaim != nil || s.Ephemeral != nil || s.CSI != nil
	}
	for _, vol := range spec.Volumes {
		if !allowedVolumes(vol) {
			add("volume %s: a type restricted does not allow", vol.Name)
		}
	}
	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range containers {
		csc := c.SecurityContext
		if csc == nil {
			csc = &corev1.SecurityContext{}
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			add("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if csc.Privileged != nil && *csc.Privileged {
			add("container %s: privileged", c.Name)
		}
		if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			add("container %s: capabilities do not drop ALL", c.Name)
		}
		if csc.Capabilities != nil && len(csc.Capabilities.Add) > 0 {
			add("container %s: adds capabilities", c.Name)
		}
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			add("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if csc.RunAsNonRoot != nil && !*csc.RunAsNonRoot || csc.RunAsUser != nil && *csc.RunAsUser == 0 {
			add("container %s: runs as root", c.Name)
		}
		if csc.SeccompProfile != nil && csc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault &&
			csc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost {
			add("container %s: seccompProfile %s", c.Name, csc.SeccompProfile.Type)
		}
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				add("container %s: hostPort %d", c.Name, p.HostPort)
			}
		}
	}
	return v
}

// TestRestrictedViolationsFindsEachGap shows the checker the deployment tests rely
// on is not blind: a compliant pod has no violation, and breaking any one rule
// gives exactly that violation.
func TestRestrictedViolationsFindsEachGap(t *testing.T) {
	t.Parallel()
	yes, no, user := true, false, int64(65532)
	root := int64(0)
	compliant := func() corev1.PodSpec {
		return corev1.PodSpec{
			AutomountServiceAccountToken: &no,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: &yes, RunAsUser: &user, RunAsGroup: &user,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			InitContainers: []corev1.Container{{Name: "init", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
			Containers: []corev1.Container{{Name: "main", SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		}
	}
	if v := restrictedViolations(compliant()); len(v) != 0 {
		t.Fatalf("a compliant pod has violations: %v", v)
	}
	tests := []struct {
		name   string
		mutate func(*corev1.PodSpec)
		want   string
	}{
		{"TokenMounted", func(s *corev1.PodSpec) { s.AutomountServiceAccountToken = nil }, "automountServiceAccountToken is not false"},
		{"HostNetwork", func(s *corev1.PodSpec) { s.HostNetwork = true }, "shares a host namespace"},
		{"MayRunAsRoot", func(s *corev1.PodSpec) { s.SecurityContext.RunAsNonRoot = nil }, "pod: runAsNonRoot is not true"},
		{"RootUser", func(s *corev1.PodSpec) { s.SecurityContext.RunAsUser = &root }, "pod: runAsUser is not a non-zero user"},
		{"NoGroup", func(s *corev1.PodSpec) { s.SecurityContext.RunAsGroup = nil }, "pod: runAsGroup is not a non-zero group"},
		{"NoSeccomp", func(s *corev1.PodSpec) { s.SecurityContext.SeccompProfile = nil }, "pod: seccompProfile is not RuntimeDefault"},
		{"HostPath", func(s *corev1.PodSpec) {
			s.Volumes[0].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}
		}, "volume tmp: a type restricted does not allow"},
		{"InitEscalates", func(s *corev1.PodSpec) { s.InitContainers[0].SecurityContext.AllowPrivilegeEscalation = &yes }, "container init: allowPrivilegeEscalation is not false"},
		{"InitWritableRoot", func(s *corev1.PodSpec) { s.InitContainers[0].SecurityContext.ReadOnlyRootFilesystem = nil }, "container init: readOnlyRootFilesystem is not true"},
		{"KeepsCapabilities", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Capabilities.Drop = nil }, "container main: capabilities do not drop ALL"},
		{"AddsCapability", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
		}, "container main: adds capabilities"},
		{"Privileged", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Privileged = &yes }, "container main: privileged"},
		{"ContainerRoot", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.RunAsUser = &root }, "container main: runs as root"},
		{"HostPort", func(s *corev1.PodSpec) {
			s.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}
		}, "container main: hostPort 80"},
		{"NoContainerContext", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext = nil }, "container main: allowPrivilegeEscalation is not false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := compliant()
			tt.mutate(&spec)
			v := restrictedViolations(spec)
			if !slices.Contains(v, tt.want) {
				t.Fatalf("violations %v, want %q among them", v, tt.want)
			}
		})
	}
}
