package grpcx_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/grpcx"
)

// TestDashboardServesHTTP2 serves DashboardTLS as the dashboard does
// (http.Server.ServeTLS) and asks as a browser does, with and without a client
// certificate: both are served HTTP/2, so a browser's tabs share one
// connection.
func TestDashboardServesHTTP2(t *testing.T) {
	t.Parallel()
	_, serverFiles, clientFiles := twoBundles(t)
	cfg, err := grpcx.Security{TLS: serverFiles}.DashboardTLS()
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{TLSConfig: cfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	})}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	roots, cert := clientMaterial(t, clientFiles)
	for name, certs := range map[string][]tls.Certificate{"WithACertificate": {cert}, "WithoutOne": nil} {
		t.Run(name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
				TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, ServerName: "127.0.0.1"}}}
			defer client.CloseIdleConnections()
			resp, err := client.Get("https://" + l.Addr().String() + "/")
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, "HTTP/2.0", string(body))
		})
	}
}
