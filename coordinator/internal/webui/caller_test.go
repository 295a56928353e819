package webui

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

func TestCallerOf(t *testing.T) {
	t.Parallel()
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 127.0.0.1")
	require.NoError(t, err)
	open, err := grpcx.Security{}.Authorization(nil)
	require.NoError(t, err)
	d := &Dashboard{cfg: Config{ProxyHeader: DefaultProxyHeader, TrustedProxies: proxies, Authorization: open}}
	req := func(remote, email string) caller {
		r := httptest.NewRequest("GET", "/ui/", nil)
		r.RemoteAddr = remote
		if email != "" {
			r.Header.Set(DefaultProxyHeader, email)
		}
		return d.callerOf(r)
	}
	t.Run("ProxyHeaderFromATrustedAddress", func(t *testing.T) {
		t.Parallel()
		c := req("10.1.2.3:5555", "ops@nomina.cl")
		require.Equal(t, "ops@nomina.cl", c.Identity)
		require.Equal(t, "proxy", c.Via)
		require.True(t, c.CanStart, "plaintext: every method is open to an identified caller")
		require.Equal(t, "ops@nomina.cl", req("127.0.0.1:1", "ops@nomina.cl").Identity)
	})
	t.Run("ProxyHeaderFromElsewhereIgnored", func(t *testing.T) {
		t.Parallel()
		c := req("192.168.1.9:5555", "ops@nomina.cl")
		require.Empty(t, c.Identity)
		require.False(t, c.CanStart || c.CanCancel, "no identity: read-only")
		require.True(t, d.mayRead(c, methodList), "plaintext: anyone may read")
	})
	t.Run("NoHeaderNoIdentity", func(t *testing.T) {
		t.Parallel()
		require.Empty(t, req("10.1.2.3:5555", "").Identity)
	})
	_, err = ParseTrustedProxies("not-an-address")
	require.Error(t, err)
}

func TestCallerOfUnderPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(`rules:
  - identities: ["ops@nomina.cl"]
    methods: ["consolidation.v1.ConsolidationService/*"]
  - identities: ["analista@nomina.cl"]
    methods: ["consolidation.v1.ConsolidationService/ListConsolidations"]
`), 0o600))
	authz, err := grpcx.Security{TLS: grpcx.TLSFiles{Cert: "c", Key: "k", CA: "a"}, PolicyFile: policy}.Authorization(nil)
	require.NoError(t, err)
	proxies, _ := ParseTrustedProxies("127.0.0.1")
	d := &Dashboard{cfg: Config{ProxyHeader: "X-User", TrustedProxies: proxies, Authorization: authz}}
	as := func(email string) caller {
		r := httptest.NewRequest("GET", "/ui/", nil)
		r.RemoteAddr = "127.0.0.1:1"
		r.Header.Set("X-User", email)
		return d.callerOf(r)
	}
	ops, analyst, nobody := as("ops@nomina.cl"), as("analista@nomina.cl"), as("")
	require.True(t, ops.CanStart && ops.CanCancel)
	require.False(t, analyst.CanStart || analyst.CanCancel)
	require.True(t, d.mayRead(analyst, methodList))
	require.False(t, d.mayRead(analyst, methodExplain))
	require.False(t, d.mayRead(nobody, methodList), "on TLS a page needs an identity")
}
