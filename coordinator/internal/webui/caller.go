package webui

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// caller is who asks for a page, and what the policy lets them do.
type caller struct {
	Identity string // "" : not identified
	// Via says how the identity was established: "certificado" or "proxy".
	Via string
	// CanStart, CanCancel: the policy allows Consolidate, CancelConsolidation.
	CanStart, CanCancel bool
}

// The gRPC methods whose permission each page and action takes.
const (
	methodList    = consolidationv1.ConsolidationService_ListConsolidations_FullMethodName
	methodGet     = consolidationv1.ConsolidationService_GetConsolidation_FullMethodName
	methodWatch   = consolidationv1.ConsolidationService_WatchConsolidation_FullMethodName
	methodExplain = consolidationv1.ConsolidationService_ExplainEmployee_FullMethodName
	methodStart   = consolidationv1.ConsolidationService_Consolidate_FullMethodName
	methodCancel  = consolidationv1.ConsolidationService_CancelConsolidation_FullMethodName
)

// callerOf identifies the request's caller: by the client certificate the TLS
// connection verified, else by the proxy header when the request comes from a
// trusted proxy address, else not at all.
func (d *Dashboard) callerOf(r *http.Request) caller {
	var c caller
	if id, ok := grpcx.IdentityOfTLS(r.TLS); ok {
		c.Identity, c.Via = id, "certificado"
	} else if v := strings.TrimSpace(r.Header.Get(d.cfg.ProxyHeader)); v != "" && d.fromTrustedProxy(r) {
		c.Identity, c.Via = v, "proxy"
	}
	c.CanStart = d.cfg.Authorization.Allows(c.Identity, methodStart)
	c.CanCancel = d.cfg.Authorization.Allows(c.Identity, methodCancel)
	return c
}

func (d *Dashboard) fromTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range d.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// mayRead reports whether the caller may see what method shows: on plaintext
// anyone may, as on the gRPC port; on TLS the policy must allow their identity.
func (d *Dashboard) mayRead(c caller, method string) bool {
	return d.cfg.Authorization.Open() || d.cfg.Authorization.Allows(c.Identity, method)
}

// ParseTrustedProxies reads UI_TRUSTED_PROXIES: addresses or CIDR prefixes,
// comma-separated.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
