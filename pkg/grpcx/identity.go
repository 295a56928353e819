package grpcx

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// CallerIdentity is the identity of the caller of the call ctx belongs to, taken
// from the certificate it presented and the server verified (SPEC section 11):
// its first URI SAN (spiffe://payroll/app), else its first DNS SAN, else its
// subject CN. ok is false on a plaintext connection, or when the certificate
// names nothing.
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

// IdentityOf names a certificate: its first URI SAN, else its first DNS SAN,
// else its subject CN ("" when it has none of them).
func IdentityOf(cert *x509.Certificate) string {
	switch {
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	default:
		return cert.Subject.CommonName
	}
}
