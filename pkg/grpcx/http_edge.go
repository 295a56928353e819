package grpcx

import (
	"crypto/tls"
	"log/slog"
)

// An HTTP edge beside the gRPC port (the coordinator's dashboard) applies the
// same transport security: the same certificate files, re-read as they change,
// the same identities and the same authorization policy, so a person may do on
// it exactly what their identity may do over gRPC.

// DashboardTLS is the TLS configuration of an HTTP server on s's files: TLS 1.3,
// the certificate and CA re-read on each handshake as the gRPC server's are, and
// a client certificate verified against the CA when one is presented. Unlike the
// gRPC port it does not require one: a browser behind an authenticating proxy
// presents none, and is then identified by the proxy (or not at all). Nil when s
// has no TLS files: plaintext.
func (s Security) DashboardTLS() (*tls.Config, error) {
	if !s.TLS.Enabled() {
		return nil, nil
	}
	material, err := newKeyMaterial(s.TLS)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := material.serverConfig(s.Identities)
		if c != nil {
			// The config returned here is the one the handshake uses: without
			// its protocols a browser is served HTTP/1.1, where it opens at most
			// six connections to the host and every run tab holds one for its
			// events.
			c.NextProtos = []string{"h2", "http/1.1"}
			// A certificate, when given, must name an identity as on the gRPC
			// port; none is no identity (a proxy's header may name one).
			c.ClientAuth = tls.VerifyClientCertIfGiven
			verify := c.VerifyConnection
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return nil
				}
				return verify(cs)
			}
		}
		return c, err
	}}, nil
}

// IdentityOfTLS is the identity of the client certificate a TLS connection
// verified (IdentityOf), as CallerIdentity names a gRPC caller; ok is false
// without one.
func IdentityOfTLS(state *tls.ConnectionState) (identity string, ok bool) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	identity = IdentityOf(state.VerifiedChains[0][0])
	return identity, identity != ""
}

// Authorization decides, for an edge that is not the gRPC server, whether an
// identity may do what a gRPC method does, by the policy the gRPC server applies.
type Authorization struct {
	open  bool // plaintext: every method is open on the gRPC port
	authz *authorizer
}

// Authorization reads s's policy file (re-read as the gRPC server's is, at most
// every PolicyRecheck). Without TLS every method is open, as on the gRPC port;
// with TLS and no policy file none is.
func (s Security) Authorization(logger *slog.Logger) (*Authorization, error) {
	if !s.TLS.Enabled() {
		return &Authorization{open: true}, nil
	}
	a, err := newAuthorizer(logger, s.PolicyFile)
	if err != nil {
		return nil, err
	}
	return &Authorization{authz: a}, nil
}

// Allows reports whether identity may call fullMethod
// ("/package.Service/Method"). An empty identity may call nothing, even on
// plaintext: an edge that cannot tell who is asking does nothing on their behalf.
func (a *Authorization) Allows(identity, fullMethod string) bool {
	if identity == "" {
		return false
	}
	return a.open || a.authz.current().Allows(identity, fullMethod)
}

// Open reports whether every method is open to every caller, identified or not:
// plaintext, as on the gRPC port.
func (a *Authorization) Open() bool { return a.open }
