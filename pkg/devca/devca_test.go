package devca_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/devca"
)

// TestWriteBundleRotates writes a bundle twice into one directory, as the kubelet
// updates a mounted Secret: the paths stay, their contents are the new
// certificate's, it verifies against the CA, and the old version is gone.
func TestWriteBundleRotates(t *testing.T) {
	t.Parallel()
	ca, err := devca.NewCA("test CA")
	require.NoError(t, err)
	dir := t.TempDir()
	certPath, keyPath, caPath := devca.Paths(dir)
	for range 2 {
		issued, err := ca.Issue(devca.Leaf{CommonName: "svc", URIs: []string{"spiffe://payroll/worker"}, DNSNames: []string{"worker"}})
		require.NoError(t, err)
		require.NoError(t, ca.WriteBundle(dir, issued))

		pair, err := tls.LoadX509KeyPair(certPath, keyPath)
		require.NoError(t, err)
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		require.NoError(t, err)
		require.Equal(t, 0, issued.Serial.Cmp(leaf.SerialNumber))
		require.Equal(t, "spiffe://payroll/worker", leaf.URIs[0].String())
		caPEM, err := os.ReadFile(caPath)
		require.NoError(t, err)
		roots := x509.NewCertPool()
		require.True(t, roots.AppendCertsFromPEM(caPEM))
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "worker", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		require.NoError(t, err)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 5, "tls.crt, tls.key, ca.crt, ..data and one version")
}
