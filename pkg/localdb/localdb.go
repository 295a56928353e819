// Package localdb starts throwaway PostgreSQL and Redis servers on this machine,
// for the demo, the benchmark and the test harness (pkg/pgtest): PostgreSQL's own
// initdb and postgres (as the postgres user when run as root) and redis-server, on
// free loopback ports in temporary directories, installed with apt-get when they
// are missing and we are root on Debian. Nothing here is for production.
package localdb

import (
	"fmt"
	"net"
)

// FreePort is a loopback port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last n bytes of a log, for an error message.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
