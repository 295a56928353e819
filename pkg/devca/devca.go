// Package devca is a throwaway certificate authority for the demo and the tests:
// an ECDSA P-256 CA made in memory and leaf certificates it signs, for mTLS
// between the local processes (docs/security-model.md). Nothing here is meant for
// production, where cert-manager issues the certificates.
package devca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Validity of every certificate made here: long enough for any demo or test.
const Validity = 24 * time.Hour

// CA is a certificate authority with its key.
type CA struct {
	Cert *x509.Certificate
	// PEM is Cert, PEM-encoded: what TLS_CA_FILE holds.
	PEM []byte
	key *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, PEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// Leaf says whom a certificate names. Each leaf may serve and call (both
// extended key usages), as a service of the cluster does.
type Leaf struct {
	CommonName string
	URIs       []string // e.g. spiffe://payroll/coordinator
	DNSNames   []string
	IPs        []net.IP
}

// Issued is a signed leaf certificate and its key, PEM-encoded.
type Issued struct {
	CertPEM, KeyPEM []byte
	Serial          *big.Int
}

// Issue signs a new certificate for leaf, with a fresh key and serial.
func (ca *CA) Issue(leaf Leaf) (Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return Issued{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: leaf.CommonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     leaf.DNSNames,
		IPAddresses:  leaf.IPs,
	}
	for _, u := range leaf.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			return Issued{}, fmt.Errorf("URI SAN %q: %w", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return Issued{}, fmt.Errorf("signing a certificate for %v: %w", leaf.URIs, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER), Serial: serial}, nil
}

// File names of a bundle, as cert-manager's Secret keys name them.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// WriteBundle writes the certificate and key of issued, and the CA's
// certificate, into dir as tls.crt, tls.key and ca.crt the way the kubelet
// updates a mounted Secret: the files are symbolic links through "..data" to a
// directory of the current version, and a new version replaces "..data" in one
// rename. Calling it again on the same dir rotates the files atomically: a
// reader sees the old set or the new one.
func (ca *CA) WriteBundle(dir string, issued Issued) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	version, err := os.MkdirTemp(dir, "..version-")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{CertFile: issued.CertPEM, KeyFile: issued.KeyPEM, CAFile: ca.PEM} {
		if err := os.WriteFile(filepath.Join(version, name), data, 0o600); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for _, name := range []string{CertFile, KeyFile, CAFile} {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	if old != "" && old != filepath.Base(version) {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// WriteCAFile writes the CA's certificate alone into dir as ca.crt (for a
// client that verifies a server: PostgreSQL's sslrootcert, REDIS_TLS_CA_FILE)
// and returns its path.
func (ca *CA) WriteCAFile(dir string) (string, error) {
	path := filepath.Join(dir, CAFile)
	return path, os.WriteFile(path, ca.PEM, 0o600)
}

// NewCAFile makes a CA named name and writes its certificate into dir
// (WriteCAFile); it returns the CA and the file's path.
func NewCAFile(name, dir string) (*CA, string, error) {
	ca, err := NewCA(name)
	if err != nil {
		return nil, "", err
	}
	path, err := ca.WriteCAFile(dir)
	return ca, path, err
}

// Paths are the files WriteBundle writes into dir.
func Paths(dir string) (cert, key, ca string) {
	return filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile)
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
