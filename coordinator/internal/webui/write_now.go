package webui

import (
	"cmp"
	"errors"
	"net"
	"slices"
	"syscall"
)

// rawConn is c's socket, when c has one of its own (a TCP connection; a TLS
// connection's bytes are not the events').
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeNow writes parts to rc's socket as far as it takes them without
// waiting, and returns what is left.
func writeNow(rc syscall.RawConn, parts net.Buffers) (net.Buffers, error) {
	parts = slices.Clone(parts) // the slices' headers, cut as they are written; never their bytes
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(parts) > 0 {
			n, err := syscall.Write(int(fd), parts[0])
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN): // the socket's buffer is full
				return true
			case err != nil:
				werr = err
				return true
			}
			if parts[0] = parts[0][n:]; len(parts[0]) == 0 {
				parts = parts[1:]
			}
		}
		return true // done: never wait for the socket here
	})
	if len(parts) == 0 {
		parts = nil
	}
	return parts, cmp.Or(err, werr)
}
