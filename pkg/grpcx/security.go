package grpcx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"google.golang.org/grpc"
)

// Security is a process's transport security (docs/security-model.md): mTLS from its
// TLS files, and the authorization policy its server applies.
type Security struct {
	TLS TLSFiles
	// Identities is the rule that names callers (TLS_TRUST_DOMAIN,
	// TLS_ALLOW_DNS_IDENTITY): a client certificate that names no identity under
	// it is refused at the handshake.
	Identities IdentityPolicy
	// PolicyFile is AUTHZ_POLICY_FILE; with TLS on and no policy file only
	// health is open.
	PolicyFile string
	// AllowPlaintext is ALLOW_PLAINTEXT: without TLS files a server refuses to
	// start unless it is true (development: make demo, the benchmark, tests).
	AllowPlaintext bool
}

// EnvAllowPlaintext names the setting that lets a service serve, and dial, in
// plaintext, without authentication: development only.
const EnvAllowPlaintext = "ALLOW_PLAINTEXT"

// SecurityFromEnv reads TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE and
// AUTHZ_POLICY_FILE with getenv (os.Getenv). A partial TLS setting, or a policy
// without TLS (which could not tell one caller from another), is an error
// naming the variables.
func SecurityFromEnv(getenv func(string) string) (Security, error) {
	files, err := TLSFilesFromEnv(getenv)
	ids, idsErr := IdentityPolicyFromEnv(getenv)
	s := Security{TLS: files, Identities: ids, PolicyFile: getenv(EnvAuthzPolicy)}
	var plainErr error
	if v := getenv(EnvAllowPlaintext); v != "" {
		if s.AllowPlaintext, plainErr = strconv.ParseBool(v); plainErr != nil {
			plainErr = fmt.Errorf("%s %q: want true or false", EnvAllowPlaintext, v)
		}
	}
	if err := errors.Join(err, idsErr, plainErr); err != nil {
		return s, err
	}
	if s.PolicyFile != "" && !files.Enabled() {
		return s, fmt.Errorf("%s needs mTLS (%s, %s, %s): without it no caller has an identity",
			EnvAuthzPolicy, EnvTLSCert, EnvTLSKey, EnvTLSCA)
	}
	return s, nil
}

// ErrPlaintextRefused is ServerOptions' answer without TLS files and without
// AllowPlaintext: the services are secure by default.
var ErrPlaintextRefused = fmt.Errorf("no TLS: set %s, %s and %s (mTLS), or %s=true for development only",
	EnvTLSCert, EnvTLSKey, EnvTLSCA, EnvAllowPlaintext)

// ServerOptions are the options of NewServer that apply s: TLS 1.3 with client
// certificates required and verified (the files re-read when they change) and
// the authorization interceptors; or, with no TLS files and AllowPlaintext,
// plaintext and every method open, logged at error level; with neither,
// ErrPlaintextRefused.
func (s Security) ServerOptions(logger *slog.Logger) ([]ServerOption, error) {
	if !s.TLS.Enabled() {
		if !s.AllowPlaintext {
			return nil, ErrPlaintextRefused
		}
		logger.Error("ALLOW_PLAINTEXT=true: serving PLAINTEXT WITHOUT AUTHENTICATION, every method open to anyone who can connect; development only")
		return nil, nil
	}
	material, err := newKeyMaterial(s.TLS)
	if err != nil {
		return nil, err
	}
	authz, err := newAuthorizer(logger, s.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", EnvAuthzPolicy, s.PolicyFile, err)
	}
	if s.PolicyFile == "" {
		logger.Warn("no AUTHZ_POLICY_FILE: only health is open")
	}
	logger.Info("serving mTLS", "cert", s.TLS.Cert, "ca", s.TLS.CA, "policy", s.PolicyFile,
		"trust_domain", s.Identities.TrustDomain, "dns_identities", s.Identities.AllowDNS)
	return []ServerOption{
		WithServerCredentials(&reloadingCredentials{material: material, ids: s.Identities, onError: tlsReloadWarning(logger)}),
		func(c *serverConfig) { c.authz = authz },
	}, nil
}

// DialOptions are the options of Dial that apply s's TLS files: the client
// presents its certificate and verifies the server's against the CA and the
// server name (the host of the address dialled, unless WithTLSServerName says
// otherwise). With no TLS files: plaintext.
func (s Security) DialOptions(logger *slog.Logger) ([]DialOption, error) {
	return s.TLS.DialOptions(logger)
}

// DialOptions are the options of Dial that present f's certificate and verify
// the server's (see Security.DialOptions).
func (f TLSFiles) DialOptions(logger *slog.Logger) ([]DialOption, error) {
	if !f.Enabled() {
		return nil, nil
	}
	material, err := newKeyMaterial(f)
	if err != nil {
		return nil, err
	}
	return []DialOption{func(c *dialConfig) {
		c.creds = &reloadingCredentials{material: material, onError: tlsReloadWarning(logger)}
	}}, nil
}

// Dial dials target (Dial) presenting f's certificate, or in plaintext when f
// names no file; opts are added.
func (f TLSFiles) Dial(target string, opts ...DialOption) (*grpc.ClientConn, error) {
	tlsOpts, err := f.DialOptions(nil)
	if err != nil {
		return nil, err
	}
	return Dial(target, append(tlsOpts, opts...)...)
}

// WithPeerIdentity checks, instead of a server name, that the server's
// certificate names the identity id under ids (IdentityPolicy): the coordinator
// dials workers by pod IP and checks their SPIFFE ID. Plaintext ignores it. It
// may come before or after the TLS options.
func WithPeerIdentity(ids IdentityPolicy, id string) DialOption {
	return func(c *dialConfig) { c.peerIDs, c.peerID = ids, id }
}

// WithTLSServerName checks name, instead of the host dialled, in the server's
// certificate: a coordinator dials workers by pod IP and checks the name of the
// headless Service they were resolved from. Plaintext ignores it. It may come
// before or after the TLS options.
func WithTLSServerName(name string) DialOption {
	return func(c *dialConfig) { c.serverName = name }
}

func tlsReloadWarning(logger *slog.Logger) func(error) {
	if logger == nil {
		return nil
	}
	return func(err error) {
		logger.Warn("TLS files not reloaded; the last good certificate stays", "error", err.Error())
	}
}

// HTTPServerTLS is the TLS configuration of an HTTP port that is a front end of
// the gRPC server (the coordinator's HTTP_ADDR), nil with no TLS files: the
// gRPC port's own, from the same files re-read when they change — TLS 1.3, a
// client certificate required and verified against the CA — offering HTTP/2
// and HTTP/1.1. The verified chains of a request's TLS state then name its
// caller, as on the gRPC port (Server.DialInProcess).
func (s Security) HTTPServerTLS(logger *slog.Logger) (*tls.Config, error) {
	if !s.TLS.Enabled() {
		return nil, nil
	}
	material, err := newKeyMaterial(s.TLS)
	if err != nil {
		return nil, err
	}
	warn := tlsReloadWarning(logger)
	return &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg, err := material.serverConfig(s.Identities)
			if cfg == nil {
				return nil, err
			}
			if err != nil && warn != nil {
				warn(err)
			}
			cfg.NextProtos = []string{"h2", "http/1.1"}
			return cfg, nil
		}}, nil
}
