package clienttest

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy sits between a client and the registry on a fixed loopback port.
// It forwards requests, except that it can answer the next N requests with
// a status of its choosing, and it can go down (port closed: connection
// refused) and come back up on the same port.
type Proxy struct {
	Addr string // host:port, stable across Down/Up

	target   *url.URL
	requests atomic.Int64
	mu       sync.Mutex
	failN    int
	status   int
	srv      *http.Server
	ln       net.Listener
	t        testing.TB
}

// NewProxy starts a proxy in front of target (a base URL).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: u, t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

// URL is the proxy's base URL.
func (p *Proxy) URL() string { return "http://" + p.Addr }

// Requests counts the requests that reached the proxy.
func (p *Proxy) Requests() int { return int(p.requests.Load()) }

// FailNext answers the next n requests with status (and a JSON error body)
// instead of forwarding them.
func (p *Proxy) FailNext(n, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failN, p.status = n, status
}

func (p *Proxy) serve(ln net.Listener) {
	rp := httputil.NewSingleHostReverseProxy(p.target)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		p.mu.Lock()
		fail := p.failN > 0
		status := p.status
		if fail {
			p.failN--
		}
		p.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"injected by the test proxy"}`))
			return
		}
		rp.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	p.mu.Lock()
	p.srv, p.ln = srv, ln
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Down closes the port: connections are refused until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens on the same port again.
func (p *Proxy) Up() error {
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly if the kernel is slow
	// to release it.
	for i := 0; i < 50; i++ {
		ln, err = net.Listen("tcp", p.Addr)
		if err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.Join(errors.New("proxy: re-listening"), err)
}
