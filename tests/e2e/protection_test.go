package e2e

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// withSections adds sections to the discovery config.
func withSections(e *env, sections map[string]any) map[string]any {
	cfg := discoveryConfig(e.redis)
	for k, v := range sections {
		cfg[k] = v
	}
	return cfg
}

// Rate limit by IP: Kong-compatible headers, then 429 with Kong's body.
func TestRateLimit429(t *testing.T) {
	requireWired(t, "internal/ratelimit")
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	if err := e.kong.UpdatePlugin(e.pid, withSections(e, map[string]any{
		// GCRA (internal/ratelimit): burst 2 lets 3 requests through at
		// once, then one every 20 s.
		"rate_limit": map[string]any{"enabled": true, "requests_per_min": 3, "burst": 2, "limit_by": "ip"},
	})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		status, body, h := e.get("/orders")
		if status != 200 {
			t.Fatalf("request %d: %d %s", i+1, status, body)
		}
		if h.Get("RateLimit-Limit") != "3" || h.Get("X-RateLimit-Limit-Minute") != "3" ||
			h.Get("RateLimit-Remaining") != strconv.Itoa(2-i) || h.Get("RateLimit-Reset") == "" {
			t.Fatalf("request %d headers: %v", i+1, h)
		}
	}
	status, body, h := e.get("/orders")
	var msg struct{ Message string }
	_ = json.Unmarshal([]byte(body), &msg)
	if status != 429 || msg.Message != "API rate limit exceeded" || h.Get("Retry-After") == "" || h.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("4th request: %d %s %v", status, body, h)
	}
	if e.bes["a"].hits.Load() != 3 {
		t.Fatalf("backend saw %d requests, want 3", e.bes["a"].hits.Load())
	}
}

// Breaker: a failing instance is opened and traffic moves to the healthy
// one; after timeout_ms a probe closes it again (half-open recovery).
func TestBreakerOpensAndRecovers(t *testing.T) {
	requireWired(t, "internal/breaker")
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}})
	if err := e.kong.UpdatePlugin(e.pid, withSections(e, map[string]any{
		"circuit_breaker": map[string]any{"enabled": true, "failure_threshold": 3, "timeout_ms": 2000},
	})); err != nil {
		t.Fatal(err)
	}
	bad := e.bes["b"]
	bad.status.Store(500)
	// The breaker opens after this instant, so its open period (timeout_ms)
	// lasts at least until start + 2 s: an answer received before then
	// cannot come from a half-open probe. A loaded machine can take longer
	// than that over the requests below; half-open probes of b (failing,
	// each reopening it for twice as long) are then legitimate.
	start := time.Now()
	const open = 2 * time.Second
	probesPossible := func() int64 { // half-open periods begun by now, at the earliest
		n, end, d := int64(0), open, open
		for elapsed := time.Since(start); elapsed >= end; d *= 2 {
			n++
			end += 2 * d
		}
		return n
	}
	for i := 0; i < 20; i++ {
		e.get("/orders")
	}
	if err := e.kong.WaitIdle(e.ctx()); err != nil {
		t.Fatal(err)
	}
	// Outcomes are recorded in the log phase, after the response: allow the
	// requests already in flight when the breaker opened.
	if n, p := bad.hits.Load(), probesPossible(); n > 3+2+p {
		t.Fatalf("failing instance got %d requests (%d half-open probes possible), breaker threshold 3", n, p)
	} else if p > 0 {
		t.Logf("slow machine: %v after the first request, %d half-open probes possible", time.Since(start), p)
	}
	// While b is open, everything goes to a.
	checked := 0
	for i := 0; i < 10; i++ {
		status, _, h := e.get("/orders")
		if time.Since(start) >= open {
			break // b may be half-open: this answer may be its probe
		}
		if status != 200 || h.Get("X-Instance") != "a" {
			t.Fatalf("with b open: %d from %q", status, h.Get("X-Instance"))
		}
		checked++
	}
	if checked < 10 {
		t.Logf("slow machine: %d requests answered inside b's open period", checked)
	}
	bad.status.Store(0) // healthy again
	waitFor(t, 10*time.Second, "b back in rotation after a half-open probe", func() bool {
		_, _, h := e.get("/orders")
		return h.Get("X-Instance") == "b"
	})
}

// Acceptance 4 (DESIGN decision 7), counted by the harness: with discovery +
// rate limit by IP + breaker a proxied request costs ≤ 4 PDK calls in 2
// events, a rate-limited one ≤ 3; with the breaker off the log event makes 0.
func TestPDKBudgetFull(t *testing.T) {
	requireWired(t, "internal/ratelimit")
	requireWired(t, "internal/breaker")
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}})
	if err := e.kong.UpdatePlugin(e.pid, withSections(e, map[string]any{
		"rate_limit":      map[string]any{"enabled": true, "requests_per_min": 20, "burst": 19, "limit_by": "ip"},
		"circuit_breaker": map[string]any{"enabled": true},
	})); err != nil {
		t.Fatal(err)
	}
	e.kong.ResetRequests()
	for i := 0; i < 25; i++ {
		e.get("/orders")
	}
	rs, err := e.kong.WaitRequests(e.ctx(), 25)
	if err != nil {
		t.Fatal(err)
	}
	proxied, limited := 0, 0
	for _, r := range rs {
		switch r.Status {
		case 200:
			proxied++
			if r.TotalCalls() > 4 || r.TotalEvents() != 2 || r.CallsByPhase["access"] > 3 || r.CallsByPhase["log"] > 1 {
				t.Errorf("proxied request over budget: %v", r)
			}
		case 429:
			limited++
			if r.TotalCalls() > 3 {
				t.Errorf("rate-limited request over budget: %v", r)
			}
		default:
			t.Errorf("unexpected %v", r)
		}
	}
	if proxied != 20 || limited != 5 {
		t.Fatalf("proxied %d, limited %d; want 20 and 5", proxied, limited)
	}
	// Breaker off: the log event costs nothing.
	if err := e.kong.UpdatePlugin(e.pid, withSections(e, map[string]any{
		// A per-second limit: its own counter, untouched by the minute
		// limit exhausted above.
		"rate_limit": map[string]any{"enabled": true, "requests_per_second": 1000, "burst": 1000, "limit_by": "ip"},
	})); err != nil {
		t.Fatal(err)
	}
	e.kong.ResetRequests()
	for i := 0; i < 5; i++ {
		e.get("/orders")
	}
	rs, err = e.kong.WaitRequests(e.ctx(), 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.CallsByPhase["log"] != 0 || r.Status != 200 {
			t.Errorf("breaker off: %v", r)
		}
	}
}
