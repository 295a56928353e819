// Package localdb starts throwaway PostgreSQL and Redis servers on this machine,
// for the demo, the benchmark and the test harness (pkg/pgtest): PostgreSQL's own
// initdb and postgres (as the postgres user when run as root) and redis-server, on
// free loopback ports in temporary directories, installed with apt-get when they
// are missing and we are root on Debian. Nothing here is for production.
package localdb

import (
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/nominacl/consolidation/pkg/devca"
)

// FreePort is a loopback port nobody listens on right now, and one this process
// has not been given before: the port is released before its user binds it, so
// without the memory two servers started together (a worker and its coordinator)
// could be handed the same one.
func FreePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		given.Lock()
		seen := given.ports[port]
		given.ports[port] = true
		given.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("finding a free port: every port offered was given out before")
}

// given is the ports FreePort has handed out.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// tail is the last n bytes of a log, for an error message.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// serverLeaf is a server certificate ca signs for a server of this package: it
// listens on 127.0.0.1, and localhost names it too.
func serverLeaf(ca *devca.CA) (devca.Issued, error) {
	return ca.Issue(devca.Leaf{CommonName: "localdb", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// startOnFreePort makes a server on a free port and starts it, on another port
// when that fails (a port found free may be taken before the server binds it),
// five ports at most; when none works it removes the server's directory dir.
func startOnFreePort[S any](dir string, newServer func(port int) *S, start func(*S) error) (*S, error) {
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := newServer(port)
		if lastErr = start(s); lastErr == nil {
			return s, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}
