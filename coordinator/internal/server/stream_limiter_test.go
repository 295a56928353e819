package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestStreamLimiter(t *testing.T) {
	t.Parallel()
	l := newStreamLimiter(3)
	for range 3 {
		require.True(t, l.acquire("10.0.0.1"))
	}
	require.False(t, l.acquire("10.0.0.1"), "the fourth stream of one caller is refused")
	require.True(t, l.acquire("10.0.0.2"), "another caller is unaffected")

	l.release("10.0.0.1")
	require.True(t, l.acquire("10.0.0.1"), "a released stream frees a place")
	require.False(t, l.acquire("10.0.0.1"))

	for range 3 {
		l.release("10.0.0.1")
	}
	l.release("10.0.0.2")
	require.Zero(t, l.callers(), "callers with no stream open are forgotten")
}

func TestCallerKeyIsThePeerHost(t *testing.T) {
	t.Parallel()
	at := func(addr net.Addr) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
	}
	require.Equal(t, "10.1.2.3", callerKey(at(&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40001})))
	require.Equal(t, callerKey(at(&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40001})),
		callerKey(at(&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 51234})), "connections of one host are one caller")
	require.Equal(t, "::1", callerKey(at(&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1})))
	require.Equal(t, "unknown", callerKey(context.Background()))
}

func TestCallerKeyIsTheCertificateIdentity(t *testing.T) {
	t.Parallel()
	uri, err := url.Parse("spiffe://payroll/app")
	require.NoError(t, err)
	withCert := func(port int) context.Context {
		cert := &x509.Certificate{URIs: []*url.URL{uri}, Subject: pkix.Name{CommonName: "app"}}
		return peer.NewContext(context.Background(), &peer.Peer{
			Addr:     &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: port},
			AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}},
		})
	}
	require.Equal(t, "identity:spiffe://payroll/app", callerKey(withCert(40001)))
	require.NotEqual(t, callerKey(withCert(40001)),
		callerKey(peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40002}})),
		"a caller with a certificate is not the host it shares with one without")
}
