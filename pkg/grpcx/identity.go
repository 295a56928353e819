package grpcx

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// The variables of the identity rule (IdentityPolicy).
const (
	EnvTrustDomain      = "TLS_TRUST_DOMAIN"
	EnvAllowDNSIdentity = "TLS_ALLOW_DNS_IDENTITY"
)

// DefaultTrustDomain is IdentityPolicy.TrustDomain's default: the deployment's
// identities are spiffe://payroll/….
const DefaultTrustDomain = "payroll"

// IdentityPolicy is the rule that names the peer of a connection, as SPIFFE
// defines an X.509 SVID: the certificate's one URI SAN, a spiffe:// ID in
// TrustDomain, is its identity; a certificate with no URI SAN, or several, or one
// outside the trust domain, has none and its handshake is refused. The subject
// CN is never an identity. AllowDNS, for PKIs that issue no SPIFFE IDs, lets a
// certificate with no URI SAN and exactly one DNS SAN be named by it.
type IdentityPolicy struct {
	TrustDomain string // default DefaultTrustDomain
	AllowDNS    bool
}

// IdentityPolicyFromEnv reads TLS_TRUST_DOMAIN and TLS_ALLOW_DNS_IDENTITY.
func IdentityPolicyFromEnv(getenv func(string) string) (IdentityPolicy, error) {
	p := IdentityPolicy{TrustDomain: getenv(EnvTrustDomain)}
	if p.TrustDomain == "" {
		p.TrustDomain = DefaultTrustDomain
	}
	if v := getenv(EnvAllowDNSIdentity); v != "" {
		allow, err := strconv.ParseBool(v)
		if err != nil {
			return p, fmt.Errorf("%s %q: want true or false", EnvAllowDNSIdentity, v)
		}
		p.AllowDNS = allow
	}
	return p, nil
}

// IdentityOf is the identity of cert under p, or an error saying why it has
// none.
func (p IdentityPolicy) IdentityOf(cert *x509.Certificate) (string, error) {
	td := p.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	switch {
	case len(cert.URIs) > 1:
		return "", fmt.Errorf("certificate has %d URI SANs: an identity is exactly one", len(cert.URIs))
	case len(cert.URIs) == 1:
		u := cert.URIs[0]
		if u.Scheme != "spiffe" || u.Host != td || u.Path == "" || u.Path == "/" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
			return "", fmt.Errorf("certificate's URI SAN %q is not a SPIFFE ID in the trust domain %q", u, td)
		}
		return u.String(), nil
	case p.AllowDNS && len(cert.DNSNames) == 1:
		return cert.DNSNames[0], nil
	case p.AllowDNS && len(cert.DNSNames) > 1:
		return "", fmt.Errorf("certificate has no URI SAN and %d DNS SANs: an identity is exactly one", len(cert.DNSNames))
	default:
		return "", errors.New("certificate has no URI SAN (a SPIFFE ID): it names no identity")
	}
}

// CallerIdentity is the identity of the caller of the call ctx belongs to, taken
// from the certificate it presented, which the server verified and whose
// identity its IdentityPolicy accepted at the handshake (docs/architecture.md,
// "Transport security"): its one URI SAN (spiffe://payroll/app), or, where the
// policy allows DNS identities, its one DNS SAN. ok is false on a plaintext
// connection.
func CallerIdentity(ctx context.Context) (identity string, ok bool) {
	p, found := peer.FromContext(ctx)
	if !found {
		return "", false
	}
	info, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS {
		return "", false
	}
	return IdentityOfTLS(&info.State)
}

// IdentityOf names a certificate the handshake accepted: its one URI SAN, else
// its one DNS SAN; "" for anything else (never the subject CN).
func IdentityOf(cert *x509.Certificate) string {
	switch {
	case len(cert.URIs) == 1:
		return cert.URIs[0].String()
	case len(cert.URIs) == 0 && len(cert.DNSNames) == 1:
		return cert.DNSNames[0]
	default:
		return ""
	}
}
