package faults

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// HTTPFaults serves an http.Handler (tests/kongfake, say) on loopback and
// can make it slow, fail with a status, or be down, then heal.
type HTTPFaults struct {
	srv  *httptest.Server
	next http.Handler

	latency atomic.Int64 // ns before each request is handled
	after   atomic.Int64 // ns between handling a request and answering it
	status  atomic.Int64 // answered instead of next when non-zero
	down    atomic.Bool  // connections closed without an answer

	mu       sync.Mutex
	requests int
	failed   int
}

// NewHTTPFaults serves next on a free loopback port until test end.
func NewHTTPFaults(t testing.TB, next http.Handler) *HTTPFaults {
	t.Helper()
	f := &HTTPFaults{next: next}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the base URL to give clients.
func (f *HTTPFaults) URL() string { return f.srv.URL }

// Addr is host:port.
func (f *HTTPFaults) Addr() string { return f.srv.Listener.Addr().String() }

// SetLatency delays each request by d before it is handled.
func (f *HTTPFaults) SetLatency(d time.Duration) { f.latency.Store(int64(d)) }

// SetReplyDelay handles each request at once but holds the answer for d:
// the change is applied while the client may time out and retry, the
// classic path to duplicates.
func (f *HTTPFaults) SetReplyDelay(d time.Duration) { f.after.Store(int64(d)) }

// FailWith answers every request with status (0 stops failing).
func (f *HTTPFaults) FailWith(status int) { f.status.Store(int64(status)) }

// Down makes every request end with the connection closed, no answer.
func (f *HTTPFaults) Down(on bool) { f.down.Store(on) }

// Heal removes every fault.
func (f *HTTPFaults) Heal() {
	f.SetLatency(0)
	f.SetReplyDelay(0)
	f.FailWith(0)
	f.Down(false)
}

// Counts returns the requests seen and those answered with a fault.
func (f *HTTPFaults) Counts() (requests, faulted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.failed
}

func (f *HTTPFaults) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if d := time.Duration(f.latency.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if f.down.Load() {
		f.count()
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway) // no hijacking (HTTP/2): the closest to down
		return
	}
	if s := int(f.status.Load()); s != 0 {
		f.count()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s)
		_, _ = w.Write([]byte(`{"message":"injected fault"}`))
		return
	}
	d := time.Duration(f.after.Load())
	if d <= 0 {
		f.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	select {
	case <-time.After(d):
	case <-r.Context().Done():
		return // the client gave up; the change stays applied
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (f *HTTPFaults) count() {
	f.mu.Lock()
	f.failed++
	f.mu.Unlock()
}
