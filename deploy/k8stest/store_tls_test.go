package k8stest

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// storeCADir is where components/store-tls mounts the stores' CAs, the
// ConfigMap consolidation-store-ca.
const storeCADir = "/etc/consolidation/store-ca"

// TestStoreTLS: in the default deployment and the production example, every
// process that connects to PostgreSQL (the coordinator, the workers, the
// migration) runs with REQUIRE_VERIFIED_DB_TLS=true and the stores' CAs mounted
// whole from consolidation-store-ca; the coordinator, the one Redis client, names
// Redis's CA in REDIS_TLS_CA_FILE, a file of that mount. The development render,
// whose stores are plaintext pods, has none of it.
func TestStoreTLS(t *testing.T) {
	t.Parallel()
	for name, r := range renders(t) {
		verified := name != "overlays/dev"
		pods := map[string]struct {
			spec      corev1.PodSpec
			container string
		}{
			"coordinator": {named[appsv1.Deployment](t, r, "coordinator").Spec.Template.Spec, "coordinator"},
			"worker":      {named[appsv1.Deployment](t, r, "worker").Spec.Template.Spec, "worker"},
			"migration":   {named[batchv1.Job](t, r, "consolidation-migrate").Spec.Template.Spec, "migrate"},
		}
		for who, p := range pods {
			i := slices.IndexFunc(p.spec.Containers, func(c corev1.Container) bool { return c.Name == p.container })
			if i < 0 {
				t.Fatalf("%s: the %s has no container %s", name, who, p.container)
			}
			c := p.spec.Containers[i]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if got := env["REQUIRE_VERIFIED_DB_TLS"] == "true"; got != verified {
				t.Errorf("%s: the %s's REQUIRE_VERIFIED_DB_TLS=true is %v, want %v", name, who, got, verified)
			}
			redisCA, hasRedisCA := env["REDIS_TLS_CA_FILE"]
			if want := verified && who == "coordinator"; hasRedisCA != want {
				t.Errorf("%s: the %s sets REDIS_TLS_CA_FILE: %v, want %v", name, who, hasRedisCA, want)
			}
			mounted := storeCAMounted(p.spec, c)
			if mounted != verified {
				t.Errorf("%s: the %s mounts consolidation-store-ca at %s: %v, want %v", name, who, storeCADir, mounted, verified)
			}
			if hasRedisCA && path.Dir(redisCA) != storeCADir {
				t.Errorf("%s: REDIS_TLS_CA_FILE %s is not in %s", name, redisCA, storeCADir)
			}
		}
	}
}

// storeCAMounted reports whether c mounts the ConfigMap consolidation-store-ca
// whole (no subPath, so a replaced CA shows up) at storeCADir.
func storeCAMounted(spec corev1.PodSpec, c corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath != storeCADir || m.SubPath != "" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "consolidation-store-ca" {
				return true
			}
		}
	}
	return false
}

// storeURL is a PostgreSQL or Redis URL as the deployment's documents write it.
var storeURL = regexp.MustCompile(`\b(?:postgres(?:ql)?|rediss?)://[^\s'"` + "`" + `\\]+`)

// TestDocumentedStoreURLsAreVerified: every PostgreSQL URL the deployment's
// documents (deploy/README.md, the base's comments, store-tls's) show is
// sslmode=verify-full with an sslrootcert, in the mounted CA directory unless it
// is a relative path (an operator's psql), and every Redis URL is rediss://.
func TestDocumentedStoreURLsAreVerified(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "k8s", "base", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "k8s", "components", "store-tls", "kustomization.yaml"),
		filepath.Join("..", "README.md"))
	seen := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range storeURL.FindAllString(string(text), -1) {
			seen++
			u, err := url.Parse(raw)
			if err != nil {
				t.Errorf("%s: %s: %v", f, raw, err)
				continue
			}
			switch u.Scheme {
			case "redis":
				t.Errorf("%s: %s is plaintext Redis; rediss:// verifies the server", f, raw)
			case "postgres", "postgresql":
				q := u.Query()
				root := q.Get("sslrootcert")
				if q.Get("sslmode") != "verify-full" || root == "" || path.IsAbs(root) && path.Dir(root) != storeCADir {
					t.Errorf("%s: %s: want sslmode=verify-full and sslrootcert in %s", f, raw, storeCADir)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no store URL found in the deployment's documents")
	}
}
