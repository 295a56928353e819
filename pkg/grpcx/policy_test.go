package grpcx_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

func TestIdentityOf(t *testing.T) {
	t.Parallel()
	uri := func(s string) *url.URL {
		u, err := url.Parse(s)
		require.NoError(t, err)
		return u
	}
	app, ops, foreign := uri("spiffe://payroll/app"), uri("spiffe://payroll/ops"), uri("spiffe://other/app")
	cn := pkix.Name{CommonName: "spiffe://payroll/ops"}
	strict, dns := grpcx.IdentityPolicy{TrustDomain: "payroll"}, grpcx.IdentityPolicy{TrustDomain: "payroll", AllowDNS: true}
	for _, tc := range []struct {
		name   string
		policy grpcx.IdentityPolicy
		cert   x509.Certificate
		want   string // "" when refused
	}{
		{"OneURISANInTheTrustDomain", strict, x509.Certificate{URIs: []*url.URL{app}, DNSNames: []string{"localhost"}, Subject: cn}, "spiffe://payroll/app"},
		{"DefaultTrustDomainIsPayroll", grpcx.IdentityPolicy{}, x509.Certificate{URIs: []*url.URL{app}}, "spiffe://payroll/app"},
		{"TwoURISANsRefused", strict, x509.Certificate{URIs: []*url.URL{app, ops}}, ""},
		{"ForeignTrustDomainRefused", strict, x509.Certificate{URIs: []*url.URL{foreign}}, ""},
		{"NotSPIFFERefused", strict, x509.Certificate{URIs: []*url.URL{uri("https://payroll/app")}}, ""},
		{"NoPathRefused", strict, x509.Certificate{URIs: []*url.URL{uri("spiffe://payroll")}}, ""},
		{"CNOnlyRefused", strict, x509.Certificate{Subject: cn}, ""},
		{"CNOnlyRefusedEvenWithDNS", dns, x509.Certificate{Subject: cn}, ""},
		{"DNSOnlyRefused", strict, x509.Certificate{DNSNames: []string{"app.payroll"}}, ""},
		{"DNSOnlyWhenAllowed", dns, x509.Certificate{DNSNames: []string{"app.payroll"}}, "app.payroll"},
		{"TwoDNSSANsRefused", dns, x509.Certificate{DNSNames: []string{"app.payroll", "localhost"}}, ""},
		{"URIStillWinsWhenDNSAllowed", dns, x509.Certificate{URIs: []*url.URL{app}, DNSNames: []string{"x"}}, "spiffe://payroll/app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.policy.IdentityOf(&tc.cert)
			if tc.want == "" {
				require.Error(t, err)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want, grpcx.IdentityOf(&tc.cert), "what the handshake accepted names the caller")
		})
	}
}

const specPolicy = `rules:
  - identities: ["spiffe://payroll/app", "spiffe://payroll/ops"]
    methods: ["consolidation.v1.ConsolidationService/*", "grpc.reflection.v1.ServerReflection/*"]
  - identities: ["spiffe://payroll/dashboard"]
    methods: ["consolidation.v1.ConsolidationService/GetConsolidation"]
`

func TestPolicyAllows(t *testing.T) {
	t.Parallel()
	p, err := grpcx.ParsePolicy([]byte(specPolicy))
	require.NoError(t, err)
	for _, tc := range []struct {
		name, identity, method string
		want                   bool
	}{
		{"WildcardCoversEveryMethodOfTheService", "spiffe://payroll/app", "/consolidation.v1.ConsolidationService/Consolidate", true},
		{"SecondIdentityOfARule", "spiffe://payroll/ops", "/consolidation.v1.ConsolidationService/CancelConsolidation", true},
		{"WithoutLeadingSlash", "spiffe://payroll/ops", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true},
		{"ExactMethod", "spiffe://payroll/dashboard", "/consolidation.v1.ConsolidationService/GetConsolidation", true},
		{"ExactMethodOnly", "spiffe://payroll/dashboard", "/consolidation.v1.ConsolidationService/Consolidate", false},
		{"WildcardIsPerService", "spiffe://payroll/app", "/consolidation.v1.WorkerService/ProcessChunk", false},
		{"ServicePrefixIsNotTheService", "spiffe://payroll/app", "/consolidation.v1.ConsolidationServiceX/Consolidate", false},
		{"UnknownIdentity", "spiffe://payroll/worker", "/consolidation.v1.ConsolidationService/GetConsolidation", false},
		{"IdentityIsExact", "spiffe://payroll/app/", "/consolidation.v1.ConsolidationService/Consolidate", false},
		{"EmptyIdentity", "", "/consolidation.v1.ConsolidationService/Consolidate", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, p.Allows(tc.identity, tc.method))
		})
	}
	t.Run("EmptyPolicyAllowsNothing", func(t *testing.T) {
		t.Parallel()
		empty, err := grpcx.ParsePolicy(nil)
		require.NoError(t, err)
		require.False(t, empty.Allows("spiffe://payroll/app", "/consolidation.v1.ConsolidationService/Consolidate"))
	})
}

func TestParsePolicyRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, msg string }{
		{"UnknownTopKey", "rule:\n  - identities: [a]\n    methods: [a.B/*]\n", "field rule not found"},
		{"UnknownRuleKey", "rules:\n  - identities: [a]\n    method: [a.B/*]\n", "field method not found"},
		{"RuleWithoutMethods", "rules:\n  - identities: [a]\n", "rule 1 needs identities and methods"},
		{"RuleWithoutIdentities", "rules:\n  - methods: [a.B/C]\n", "rule 1 needs identities and methods"},
		{"EmptyIdentity", "rules:\n  - identities: [\"\"]\n    methods: [a.B/C]\n", "rule 1 has an empty identity"},
		{"MethodWithoutService", "rules:\n  - identities: [a]\n    methods: [Consolidate]\n", "want package.Service/Method"},
		{"WildcardNotLast", "rules:\n  - identities: [a]\n    methods: [\"*/Consolidate\"]\n", "only as the whole last segment"},
		{"PartialWildcard", "rules:\n  - identities: [a]\n    methods: [\"a.B/Get*\"]\n", "only as the whole last segment"},
		{"ThreeSegments", "rules:\n  - identities: [a]\n    methods: [\"a.B/C/D\"]\n", "want package.Service/Method"},
		{"NotYAML", "rules: [", "policy:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := grpcx.ParsePolicy([]byte(tc.yaml))
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

// TestDeployedPoliciesParse reads the policies the Kubernetes tls component mounts
// (deploy/k8s/components/tls) with the services' own parser: a shape the
// services would refuse at start fails here, and the identities get what docs/security-model.md
// says.
func TestDeployedPoliciesParse(t *testing.T) {
	t.Parallel()
	read := func(name string) grpcx.Policy {
		data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "k8s", "components", "tls", name))
		require.NoError(t, err)
		p, err := grpcx.ParsePolicy(data)
		require.NoError(t, err, name)
		return p
	}
	worker := read("worker-policy.yaml")
	require.True(t, worker.Allows("spiffe://payroll/coordinator", "/consolidation.v1.WorkerService/ProcessChunk"))
	require.False(t, worker.Allows("spiffe://payroll/app", "/consolidation.v1.WorkerService/ProcessChunk"))
	require.False(t, worker.Allows("spiffe://payroll/ops", "/consolidation.v1.WorkerService/ProcessChunk"))

	coordinator := read("coordinator-policy.yaml")
	for _, id := range []string{"spiffe://payroll/app", "spiffe://payroll/ops"} {
		require.True(t, coordinator.Allows(id, "/consolidation.v1.ConsolidationService/Consolidate"), id)
		require.True(t, coordinator.Allows(id, "/consolidation.v1.ConsolidationService/CancelConsolidation"), id)
	}
	require.False(t, coordinator.Allows("spiffe://payroll/worker", "/consolidation.v1.ConsolidationService/Consolidate"))
}
