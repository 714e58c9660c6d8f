package realkong

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The two-node guard scenarios of tests/e2e (guards_test.go) on two real
// DB-less Kongs of the same build sharing one Redis, with the same
// assertions.

// eachKongPair runs fn on each build's DB-less Kong and its second node.
func eachKongPair(t *testing.T, fn func(t *testing.T, k, node2 *kong)) {
	t.Helper()
	eachKong(t, modeDBLess, func(t *testing.T, k *kong) {
		node2 := sharedKong(t, k.dir, modeNode2)
		node2.reset(t)
		fn(t, k, node2)
	})
}

// getFrom sends one request through the given node.
func (e *env) getFrom(k *kong, path string) (int, string, http.Header) {
	e.t.Helper()
	return getURL(e.t, e.http, k.proxy+path, "")
}

// One limit shared by two Kong nodes: 10 admitted cluster-wide, the rest
// 429 with Kong's body and headers; hide_client_headers removes them (e2e
// TestGuardsRateLimitTwoNodes).
func TestGuardsRateLimitTwoNodes(t *testing.T) {
	eachKongPair(t, func(t *testing.T, k, node2 *kong) {
		e := newEnv(t, k, envOptions{instances: map[string]int{"a": 1}})
		cfg := discoveryConfig(e.redis)
		cfg["rate_limit"] = map[string]any{"enabled": true, "requests_per_min": 1, "burst": 9, "limit_by": "ip"}
		if err := e.updatePlugin(cfg); err != nil {
			t.Fatal(err)
		}
		if err := e.pushTo(node2); err != nil {
			t.Fatal(err)
		}
		ok, limited := 0, 0
		for i := 0; i < 16; i++ {
			node := k
			if i%2 == 1 {
				node = node2
			}
			status, body, h := e.getFrom(node, "/orders")
			switch status {
			case 200:
				ok++
				if h.Get("RateLimit-Limit") != "1" || h.Get("X-RateLimit-Limit-Minute") != "1" ||
					h.Get("RateLimit-Remaining") != strconv.Itoa(10-ok) || h.Get("RateLimit-Reset") == "" {
					t.Fatalf("admitted request %d headers: %v", i+1, h)
				}
			case 429:
				limited++
				ra, _ := strconv.Atoi(h.Get("Retry-After"))
				if message(body) != "API rate limit exceeded" || ra < 1 || ra > 60 || h.Get("RateLimit-Remaining") != "0" ||
					h.Get("X-RateLimit-Remaining-Minute") != "0" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
					t.Fatalf("limited request %d: %s %v", i+1, body, h)
				}
			default:
				t.Fatalf("request %d: %d %s", i+1, status, body)
			}
		}
		if ok != 10 || limited != 6 || e.bes["a"].hits.Load() != 10 {
			t.Fatalf("admitted %d, limited %d, backend saw %d; want 10, 6, 10", ok, limited, e.bes["a"].hits.Load())
		}
		// Hidden headers, custom answer; the same counters (same plugin id).
		cfg = discoveryConfig(e.redis)
		cfg["rate_limit"] = map[string]any{"enabled": true, "requests_per_min": 1, "burst": 9, "limit_by": "ip",
			"hide_client_headers": true, "error_code": 403, "error_message": "quota"}
		e.cfg = cfg
		for _, node := range []*kong{k, node2} {
			if err := e.pushTo(node); err != nil {
				t.Fatal(err)
			}
			status, body, h := e.getFrom(node, "/orders")
			if status != 403 || message(body) != "quota" {
				t.Fatalf("hidden: %d %s", status, body)
			}
			for name := range h {
				if strings.Contains(strings.ToLower(name), "ratelimit") || name == "Retry-After" {
					t.Fatalf("hide_client_headers: header %s sent: %v", name, h)
				}
			}
		}
	})
}

// A failing instance opens on the node that saw the failures and, through
// the cluster sync, on the other node that never saw them; when every
// instance is open: 503 + Retry-After; half-open probes close them again
// (e2e TestGuardsBreakerTwoNodes).
func TestGuardsBreakerTwoNodes(t *testing.T) {
	eachKongPair(t, func(t *testing.T, k, node2 *kong) {
		e := newEnv(t, k, envOptions{instances: map[string]int{"a": 1, "b": 1}})
		cfg := discoveryConfig(e.redis)
		cfg["circuit_breaker"] = map[string]any{"enabled": true, "failure_threshold": 5, "timeout_ms": 1500}
		if err := e.updatePlugin(cfg); err != nil {
			t.Fatal(err)
		}
		if err := e.pushTo(node2); err != nil {
			t.Fatal(err)
		}
		a, b := e.bes["a"], e.bes["b"]
		b.status.Store(500)
		waitFor(t, 10*time.Second, "b open on node 1", func() bool {
			for i := 0; i < 10; i++ {
				if _, _, h := e.get("/orders"); h.Get("X-Instance") != "a" {
					return false
				}
			}
			return true
		})
		if n := b.hits.Load(); n > 5+4 {
			t.Fatalf("failing instance got %d requests on node 1, threshold 5", n)
		}
		// As in e2e: node 2 has learned once 4 requests in a row miss b;
		// hits after that are half-open probes.
		before := b.hits.Load()
		var learnedAfter int64 = -1
		clean := 0
		deadline := time.Now().Add(15 * time.Second)
		for clean < 20 {
			if time.Now().After(deadline) {
				t.Fatal("node 2 keeps sending to the open instance")
			}
			h0 := b.hits.Load()
			if status, _, _ := e.getFrom(node2, "/orders"); status != 200 && status != 500 {
				t.Fatalf("node 2: status %d", status)
			}
			if b.hits.Load() == h0 {
				clean++
			} else {
				clean = 0
			}
			if clean == 4 && learnedAfter < 0 {
				learnedAfter = b.hits.Load() - before
			}
			time.Sleep(50 * time.Millisecond) // pace node 2's traffic: it must not trip b by itself
		}
		if learnedAfter >= 5 {
			t.Fatalf("node 2 sent %d requests to b before learning it is open (its own threshold is 5)", learnedAfter)
		}
		t.Logf("node 2 sent %d requests to b before learning it is open, %d in all", learnedAfter, b.hits.Load()-before)

		a.status.Store(500)
		var body string
		var h http.Header
		waitFor(t, 10*time.Second, "503 with every instance open", func() bool {
			var status int
			status, body, h = e.get("/orders")
			return status == 503
		})
		ra, _ := strconv.Atoi(h.Get("Retry-After"))
		if !strings.Contains(message(body), "circuit breaker open") || ra < 1 || ra > 2 || h.Get("X-Instance") != "" {
			t.Fatalf("all open: %s %v", body, h)
		}
		a.status.Store(0)
		b.status.Store(0)
		for _, node := range []*kong{k, node2} {
			seen := map[string]bool{}
			waitFor(t, 15*time.Second, "both instances back in rotation", func() bool {
				status, _, h := e.getFrom(node, "/orders")
				if status == 200 {
					seen[h.Get("X-Instance")] = true
				}
				return seen["a"] && seen["b"]
			})
		}
	})
}
