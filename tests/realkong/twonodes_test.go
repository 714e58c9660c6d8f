package realkong

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
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
		defer func() {
			if t.Failed() { // eachKong shows node 1's logs; node 2 holds half the story
				t.Logf("kong %s %s logs:\n%s", node2.version, node2.mode, node2.logs())
			}
		}()
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
				// A busy key is admitted from each node's lease: Remaining is
				// that node's view (internal/ratelimit unitResult), within 0..9.
				rem, err := strconv.Atoi(h.Get("RateLimit-Remaining"))
				if h.Get("RateLimit-Limit") != "1" || h.Get("X-RateLimit-Limit-Minute") != "1" ||
					err != nil || rem < 0 || rem > 9 || h.Get("RateLimit-Reset") == "" {
					t.Fatalf("admitted request %d headers: %v", i+1, h)
				}
			case 429:
				limited++
				ra, _ := strconv.Atoi(h.Get("Retry-After"))
				// Retry-After: at most one interval plus the limit's slack
				// (61.2 s + 1.2 s for 1/min, internal/ratelimit doc.go).
				if message(body) != "API rate limit exceeded" || ra < 1 || ra > 63 || h.Get("RateLimit-Remaining") != "0" ||
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
		recovered := time.Now()
		for i, node := range []*kong{k, node2} {
			seen := map[string]bool{}
			waitFor(t, 15*time.Second, "both instances back in rotation", func() bool {
				status, _, h := e.getFrom(node, "/orders")
				if status == 200 {
					seen[h.Get("X-Instance")] = true
				}
				return seen["a"] && seen["b"]
			})
			// About the 1.5 s open period plus a few syncs; a node holding
			// b's probe token with no traffic for it gives it back after
			// 1 s (internal/breaker TestIdleNodesProbeTokenGoesBack).
			t.Logf("node %d: both instances back in rotation %s after both recovered", i+1, time.Since(recovered).Round(time.Millisecond))
		}
	})
}

// Kong (DB-less) down for a while: registrations and deregistrations still
// succeed, /health shows them pending, and the Kong that comes back empty
// gets everything in the next push, the operator's base config included
// (tests/adminsvc TestKongDBLessEndToEnd's outage). Run on the second node,
// which no later test uses.
func TestAdminsvcKongDownAndBackEmpty(t *testing.T) {
	eachKongPair(t, func(t *testing.T, _, k *kong) {
		rs := redistest.Start(t, redistest.Options{})
		op := newBackend(t, "operator")
		base := filepath.Join(t.TempDir(), "kong.yml")
		if err := os.WriteFile(base, []byte("_format_version: \"3.0\"\nservices:\n- name: operator-svc\n  url: http://"+op.addr()+
			"\n  routes:\n  - name: operator-route\n    paths: [/op]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s := startSvc(t, k, rs.URL(), map[string]string{"SR_KONG_BASE_CONFIG": base})
		bes := map[int]*backendSrv{}
		register := func(i int) {
			bes[i] = newBackend(t, fmt.Sprintf("d%d", i))
			if r := s.do("POST", "/register", fmt.Sprintf(`{"host":"d%d.example.com","path":"/","backend":"http://%s"}`, i, bes[i].addr())); r.Status != 200 {
				t.Fatalf("register d%d: %d %s", i, r.Status, r.Raw)
			}
		}
		register(0)
		routed(t, k, "d0.example.com", "/", bes[0], time.Now(), 20*time.Second)

		k.down(t)
		for i := 1; i <= 3; i++ {
			register(i)
		}
		if r := s.do("POST", "/deregister", `{"host":"d1.example.com","path":"/"}`); r.Status != 200 {
			t.Fatalf("deregister with kong down: %d %s", r.Status, r.Raw)
		}
		if h := s.do("GET", "/health", ""); h.Status != 200 || h.Body["pending_changes"] == 0.0 {
			t.Fatalf("health while kong down: %s", h.Raw)
		}
		failed := s.metric("sr_reconcile_errors_total")
		waitFor(t, 20*time.Second, "a failed reconcile", func() bool { return s.metric("sr_reconcile_errors_total") > failed })

		k.up(t)
		t0 := time.Now()
		waitAgree(t, s, k, 30*time.Second)
		for _, i := range []int{0, 2, 3} {
			routed(t, k, fmt.Sprintf("d%d.example.com", i), "/", bes[i], t0, 20*time.Second)
		}
		unrouted(t, k, "d1.example.com", "/", 20*time.Second)
		routed(t, k, "", "/op", op, t0, 20*time.Second)
		t.Logf("kong back empty → everything routed again in %s", time.Since(t0).Round(time.Millisecond))
		waitFor(t, 20*time.Second, "pending back to 0", func() bool {
			return s.do("GET", "/health", "").Body["pending_changes"] == 0.0
		})
	})
}
