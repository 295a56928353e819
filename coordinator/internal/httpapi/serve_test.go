package httpapi

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServeClosesIdleConnections: a client that keeps its connection open after
// a request and sends nothing more has it closed by the server.
func TestServeClosesIdleConnections(t *testing.T) {
	idleTimeout = 200 * time.Millisecond // not parallel: the package's setting
	t.Cleanup(func() { idleTimeout = 2 * time.Minute })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() {
		served <- Serve(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)), l,
			http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), nil, time.Second)
	}()
	t.Cleanup(func() { require.NoError(t, <-served) }) // the test's context ends it

	conn, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.False(t, resp.Close, "the connection is kept alive after the answer")

	// Idle from here: the server closes it (well before this deadline, which only
	// stops the test hanging if it does not).
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
	_, err = r.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closed the idle connection")
}
