package e2e_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// faultProxy is a TCP proxy on one hop of the soak (coordinator → a worker,
// services → PostgreSQL, services → Redis) that injects network faults for a
// while: latency on every forwarded piece, a reset of every open connection,
// a black hole (nothing forwarded, new connections not dialled, until it heals:
// bytes are held, as TCP retransmits them after a partition), and slow reads
// (a trickle of small pieces).
type faultProxy struct {
	name     string
	upstream string
	ln       net.Listener

	mu    sync.Mutex
	mode  netFault
	until time.Time
	heal  chan struct{} // closed when a black hole ends
	conns map[net.Conn]struct{}
}

type netFault string

const (
	netNone      netFault = ""
	netLatency   netFault = "latency"
	netReset     netFault = "reset"
	netBlackHole netFault = "black_hole"
	netSlowRead  netFault = "slow_read"
)

func newFaultProxy(name, upstream string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{name: name, upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}, heal: make(chan struct{})}
	close(p.heal)
	go p.serve()
	return p, nil
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) Close() {
	_ = p.ln.Close()
	p.resetAll()
}

// inject starts a fault for d (a reset is instantaneous).
func (p *faultProxy) inject(f netFault, d time.Duration) {
	if f == netReset {
		p.resetAll()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.until = f, time.Now().Add(d)
	if f == netBlackHole {
		heal := make(chan struct{})
		p.heal = heal
		time.AfterFunc(d, func() { close(heal) })
	}
}

// current is the fault in force, and the channel a black hole heals on.
func (p *faultProxy) current() (netFault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Now().After(p.until) {
		return netNone, p.heal
	}
	return p.mode, p.heal
}

func (p *faultProxy) resetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *faultProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *faultProxy) serve() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(down)
	}
}

func (p *faultProxy) handle(down net.Conn) {
	p.track(down, true)
	defer p.track(down, false)
	defer down.Close()
	if f, heal := p.current(); f == netBlackHole {
		<-heal
	}
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, down); done <- struct{}{} }()
	go func() { p.pipe(down, up); done <- struct{}{} }()
	<-done // one side ended: end both
}

// pipe forwards src to dst, applying the fault in force to each piece.
func (p *faultProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if werr := p.forward(dst, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

func (p *faultProxy) forward(dst net.Conn, b []byte) error {
	f, heal := p.current()
	switch f {
	case netBlackHole:
		<-heal
	case netLatency:
		time.Sleep(40 * time.Millisecond)
	case netSlowRead:
		for len(b) > 0 {
			n := min(len(b), 256)
			if _, err := dst.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}
	_, err := dst.Write(b)
	return err
}
