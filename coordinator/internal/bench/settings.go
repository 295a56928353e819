package bench

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// throwawaySettings are what pkg/localdb gives the benchmark's own PostgreSQL
// (StartPostgres), printed with any -pg-setting that overrides them.
const throwawaySettings = "fsync=off synchronous_commit=off full_page_writes=off shared_buffers=128MB"

// serviceEnv is every setting the benchmark gives the coordinator and the
// workers beyond their defaults, each with the reason it is changed; anything not
// listed runs as the services ship.
func serviceEnv(cfg Config) (env []string, reasons []string) {
	env = append(env, "LOG_LEVEL=warn")
	reasons = append(reasons, "LOG_LEVEL=warn: a log line per chunk would fill the log directory at 1,000,000 employees; the level does not change the figures (issue 24)")
	if cfg.InFlight > 0 {
		env = append(env, "WORKER_MAX_IN_FLIGHT="+strconv.Itoa(cfg.InFlight))
		reasons = append(reasons, fmt.Sprintf("WORKER_MAX_IN_FLIGHT=%d (coordinator and workers): asked for with -in-flight", cfg.InFlight))
	}
	// Set by the local cluster (launch.StartCluster), listed here with the rest.
	if cfg.DashboardTLS {
		reasons = append(reasons, "TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE and AUTHZ_POLICY_FILE (every service): mTLS with a throwaway CA's certificates, asked for with -dashboard-tls, so the dashboard is served over TLS and HTTP/2; and UI_TRUSTED_PROXIES=127.0.0.1,::1 (coordinator): the browser sends the authenticating proxy's header naming a read-only viewer")
	} else {
		reasons = append(reasons, "ALLOW_PLAINTEXT=true (every service): no certificates to make on a machine of its own; -dashboard-tls runs the services on mTLS instead")
	}
	return env, reasons
}

// printSettings prints the PostgreSQL the benchmark measures on and what it
// changes in the services.
func printSettings(out io.Writer, cfg Config) {
	if cfg.DatabaseURL != "" {
		shown := "(unparsable URL)"
		if u, err := url.Parse(cfg.DatabaseURL); err == nil {
			shown = u.Redacted()
		}
		fmt.Fprintf(out, "PostgreSQL: the existing server of %s, at its own settings\n", shown)
	} else {
		extra := ""
		if len(cfg.PostgresSettings) > 0 {
			extra = ", then " + strings.Join(cfg.PostgresSettings, " ")
		}
		fmt.Fprintf(out, "PostgreSQL: a throwaway server, %s%s\n", throwawaySettings, extra)
	}
	_, reasons := serviceEnv(cfg)
	fmt.Fprintf(out, "services: their defaults, except\n")
	for _, r := range reasons {
		fmt.Fprintf(out, "  %s\n", r)
	}
}
