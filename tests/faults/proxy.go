package faults

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int32

const (
	// Pass forwards bytes, after Latency if set.
	Pass Mode = iota
	// Drop closes every new connection as soon as it is accepted.
	Drop
	// Blackhole accepts connections and reads from them but never forwards
	// nor answers: the peer sees a hung server (its timeouts must fire).
	Blackhole
)

// Proxy is a loopback TCP proxy to one target address.
type Proxy struct {
	// Addr is where clients connect (127.0.0.1:port).
	Addr   string
	target string
	ln     net.Listener

	mode     atomic.Int32
	latency  atomic.Int64 // nanoseconds added before each forwarded chunk
	accepted atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target. It is
// stopped at test end.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Stop)
	return p
}

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Accepted counts the connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// SetMode switches the mode for new connections; Blackhole also stalls the
// connections already open (their forwarding stops).
func (p *Proxy) SetMode(m Mode) { p.mode.Store(int32(m)) }

// SetLatency delays every forwarded chunk by d (0 turns it off).
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Heal returns to Pass with no latency.
func (p *Proxy) Heal() {
	p.SetLatency(0)
	p.SetMode(Pass)
}

// Reset closes every open connection with an RST (SO_LINGER 0), as a
// crashed peer or a middlebox would.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Stop closes the listener and every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed by Stop
		}
		p.accepted.Add(1)
		switch Mode(p.mode.Load()) {
		case Drop:
			_ = c.Close()
			continue
		case Blackhole:
			if !p.track(c) {
				continue
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.untrack(c)
				_, _ = io.Copy(io.Discard, c) // ends when Stop or Reset closes c
			}()
			continue
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return // the client sees the connection closed, as with a dead target
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	// One side ended: close both so the other copy returns too.
	_ = c.Close()
	_ = up.Close()
	<-done
}

// pipe copies src to dst chunk by chunk, honouring latency and blackhole.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				// The injected delay, cut short by Heal, Reset or Stop so a
				// healed proxy (and test cleanup) does not wait it out.
				until := time.Now().Add(d)
				for time.Now().Before(until) && p.latency.Load() > 0 && p.tracked(src) {
					time.Sleep(min(5*time.Millisecond, time.Until(until)))
				}
			}
			for Mode(p.mode.Load()) == Blackhole {
				// Hold the bytes until healed, reset or stopped; poll cheaply.
				if !p.tracked(src) {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: serve closes both sides
		}
	}
}

func (p *Proxy) tracked(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.conns[c]
	return ok && !p.closed
}
