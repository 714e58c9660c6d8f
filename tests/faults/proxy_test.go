package faults

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/redis/go-redis/v9"
)

// The proxy's modes, each checked against a real redis-server.
func TestProxyModes(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	p := NewProxy(t, rs.Addr)
	c := redis.NewClient(&redis.Options{Addr: p.Addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1, PoolSize: 2})
	defer c.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	if err := ping(); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.SetLatency(100 * time.Millisecond)
	t0 := time.Now()
	if err := ping(); err != nil {
		t.Fatalf("latency: %v", err)
	}
	// Two chunks (request, reply) each delayed: at least 200 ms, under the 300 ms read timeout per chunk.
	if d := time.Since(t0); d < 190*time.Millisecond {
		t.Fatalf("latency: ping took %v, want >= 200ms", d)
	}
	p.SetLatency(0)

	p.SetMode(Blackhole)
	t0 = time.Now()
	if err := ping(); err == nil {
		t.Fatal("blackhole: ping answered")
	}
	if d := time.Since(t0); d > 1500*time.Millisecond {
		t.Fatalf("blackhole: client timeout took %v", d)
	}
	p.Heal()
	waitUntil(t, 5*time.Second, "ping after blackhole healed", func() bool { return ping() == nil })

	p.Reset() // the pooled connection is cut with an RST
	p.SetMode(Drop)
	if err := ping(); err == nil {
		t.Fatal("drop: ping answered")
	}
	p.Heal()
	waitUntil(t, 5*time.Second, "ping after drop healed", func() bool { return ping() == nil })

	p.Stop()
	if err := ping(); err == nil {
		t.Fatal("stopped proxy still answers")
	}
}

func TestHTTPFaults(t *testing.T) {
	f := NewHTTPFaults(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	hc := &http.Client{Timeout: 2 * time.Second}
	get := func() (int, error) {
		resp, err := hc.Get(f.URL() + "/")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if s, err := get(); err != nil || s != 200 {
		t.Fatalf("healthy: %d %v", s, err)
	}
	f.FailWith(503)
	if s, _ := get(); s != 503 {
		t.Fatalf("failing: %d", s)
	}
	f.FailWith(0)
	f.Down(true)
	if _, err := get(); err == nil {
		t.Fatal("down: got an answer")
	}
	f.Heal()
	f.SetLatency(150 * time.Millisecond)
	t0 := time.Now()
	if s, err := get(); err != nil || s != 200 || time.Since(t0) < 150*time.Millisecond {
		t.Fatalf("slow: %d %v after %v", s, err, time.Since(t0))
	}
	if n, bad := f.Counts(); n != 4 || bad != 2 {
		t.Fatalf("counts = %d, %d", n, bad)
	}
}

// waitUntil polls cond every 10 ms until it holds or d passes.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, d, what, cond)
}

// waitFor polls cond every 20 ms for up to d and reports whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	return testbin.Poll(d, cond)
}
