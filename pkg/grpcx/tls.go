package grpcx

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc/credentials"
)

// The variables that turn mTLS on (docs/security-model.md), for both services and
// cierrectl.
const (
	EnvTLSCert     = "TLS_CERT_FILE"
	EnvTLSKey      = "TLS_KEY_FILE"
	EnvTLSCA       = "TLS_CA_FILE"
	EnvAuthzPolicy = "AUTHZ_POLICY_FILE"
)

// TLSFiles are the PEM files of a process's mTLS: its certificate and key, and
// the CA its peers' certificates must be signed by. All empty: plaintext.
type TLSFiles struct {
	Cert, Key, CA string
}

// TLSFilesFromEnv reads TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE with getenv
// (os.Getenv). All three or none must be set: a partial setting is an error that
// names the variables missing.
func TLSFilesFromEnv(getenv func(string) string) (TLSFiles, error) {
	f := TLSFiles{Cert: getenv(EnvTLSCert), Key: getenv(EnvTLSKey), CA: getenv(EnvTLSCA)}
	return f, f.Check()
}

// Enabled reports whether any file is named (Check says whether all are).
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Check refuses a partial setting, naming the variables missing.
func (f TLSFiles) Check() error {
	if !f.Enabled() {
		return nil
	}
	var missing []string
	for _, v := range []struct{ name, value string }{{EnvTLSCert, f.Cert}, {EnvTLSKey, f.Key}, {EnvTLSCA, f.CA}} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("mTLS needs %s, %s and %s together: %s not set", EnvTLSCert, EnvTLSKey, EnvTLSCA,
			strings.Join(missing, " and "))
	}
	return nil
}

// keyMaterial reads a process's certificate and CA from their files on every
// handshake and parses them again only when the bytes changed: a certificate
// rotated on disk (cert-manager swaps the mounted files by symbolic link) is used
// from the next connection on, without a restart. A read that fails, or finds a
// certificate and key that do not match (caught between two writes), keeps the
// last good material.
type keyMaterial struct {
	files TLSFiles

	mu                     sync.Mutex
	certPEM, keyPEM, caPEM []byte
	cert                   *tls.Certificate
	pool                   *x509.CertPool
}

func newKeyMaterial(files TLSFiles) (*keyMaterial, error) {
	if err := files.Check(); err != nil {
		return nil, err
	}
	if !files.Enabled() {
		return nil, errors.New("no TLS files given")
	}
	m := &keyMaterial{files: files}
	if _, _, err := m.current(); err != nil {
		return nil, err
	}
	return m, nil
}

// current returns the certificate and CA pool the files hold now, or the last
// good ones when the files cannot be read or parsed (the error then says why;
// it is nil when the material returned is the files').
func (m *keyMaterial) current() (*tls.Certificate, *x509.CertPool, error) {
	certPEM, err1 := os.ReadFile(m.files.Cert)
	keyPEM, err2 := os.ReadFile(m.files.Key)
	caPEM, err3 := os.ReadFile(m.files.CA)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := errors.Join(err1, err2, err3); err != nil {
		return m.cert, m.pool, fmt.Errorf("reading the TLS files: %w", err)
	}
	if m.cert != nil && bytes.Equal(certPEM, m.certPEM) && bytes.Equal(keyPEM, m.keyPEM) && bytes.Equal(caPEM, m.caPEM) {
		return m.cert, m.pool, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return m.cert, m.pool, fmt.Errorf("%s and %s: %w", m.files.Cert, m.files.Key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return m.cert, m.pool, fmt.Errorf("%s holds no PEM certificate", m.files.CA)
	}
	m.certPEM, m.keyPEM, m.caPEM, m.cert, m.pool = certPEM, keyPEM, caPEM, &cert, pool
	return m.cert, m.pool, nil
}

// serverConfig is a handshake's configuration of a server: TLS 1.3 only, a
// client certificate required, verified against the CA, and naming an identity
// under ids (a certificate that names none is refused at the handshake).
func (m *keyMaterial) serverConfig(ids IdentityPolicy) (*tls.Config, error) {
	cert, pool, err := m.current()
	if cert == nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
				return errors.New("no verified client certificate")
			}
			_, err := ids.IdentityOf(cs.VerifiedChains[0][0])
			return err
		}}, nil
}

// clientConfig is a handshake's configuration of a client: TLS 1.3 only, its
// certificate presented, the server's verified against the CA and either the
// server name (serverName, or the host of the address dialled when empty) or,
// when peerID is set, the server's identity under ids, which must be peerID
// (a SPIFFE ID names the service, whatever address it is dialled at).
func (m *keyMaterial) clientConfig(serverName string, ids IdentityPolicy, peerID string) (*tls.Config, error) {
	cert, pool, err := m.current()
	if cert == nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
		RootCAs: pool, ServerName: serverName}
	if peerID != "" {
		// The chain is verified below, against the same CA, without a host name.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyPeerIdentity(cs, pool, ids, peerID)
		}
	}
	return cfg, nil
}

// verifyPeerIdentity verifies a server's chain against roots and checks that its
// identity under ids is want.
func verifyPeerIdentity(cs tls.ConnectionState, roots *x509.CertPool, ids IdentityPolicy, want string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the server's certificate: %w", err)
	}
	got, err := ids.IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("the server's certificate: %w", err)
	}
	if got != want {
		return fmt.Errorf("the server is %s, not %s", got, want)
	}
	return nil
}

// reloadingCredentials are grpc-go TLS credentials built anew, from the files'
// current material, for each handshake.
type reloadingCredentials struct {
	material   *keyMaterial
	serverName string
	ids        IdentityPolicy // the identity rule, of callers (server) or of the server (peerID)
	peerID     string         // WithPeerIdentity: the server's identity, checked instead of its name
	onError    func(error)    // told when the files could not be reloaded (the last good material is used)
}

func (c *reloadingCredentials) config(server bool) (credentials.TransportCredentials, error) {
	var cfg *tls.Config
	var err error
	if server {
		cfg, err = c.material.serverConfig(c.ids)
	} else {
		cfg, err = c.material.clientConfig(c.serverName, c.ids, c.peerID)
	}
	if cfg == nil {
		return nil, err
	}
	if err != nil && c.onError != nil {
		c.onError(err)
	}
	return credentials.NewTLS(cfg), nil
}

func (c *reloadingCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	creds, err := c.config(false)
	if err != nil {
		return nil, nil, err
	}
	// grpc-go's TLS credentials check the authority's host in the server's
	// certificate, whatever the config's ServerName says: WithTLSServerName's
	// name is handed over as the authority.
	if c.serverName != "" {
		authority = c.serverName
	}
	return creds.ClientHandshake(ctx, authority, conn)
}

func (c *reloadingCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	creds, err := c.config(true)
	if err != nil {
		return nil, nil, err
	}
	return creds.ServerHandshake(conn)
}

func (c *reloadingCredentials) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13}).Info()
}

func (c *reloadingCredentials) Clone() credentials.TransportCredentials {
	clone := *c
	return &clone
}

// OverrideServerName is grpc-go's deprecated way of setting the name checked in
// the server's certificate.
func (c *reloadingCredentials) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
