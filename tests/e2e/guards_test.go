package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// The plugin's guards (rate limiting, circuit breaking) through the harness
// with the real binary. Limits are GCRA (DESIGN decision 5): a per-minute
// limit with burst B admits B+1 requests at once, then one per minute/rate.

// guardsConfig is the discovery config plus the given sections.
func guardsConfig(e *env, sections map[string]any) map[string]any {
	cfg := discoveryConfig(e.redis)
	for k, v := range sections {
		cfg[k] = v
	}
	return cfg
}

// addNode starts another Kong node sharing e's Redis, with the same
// service, route and plugin entity (same id, as nodes of one Kong cluster
// share their database).
func (e *env) addNode(t *testing.T, cfg map[string]any) *harness.Kong {
	t.Helper()
	k := harness.Start(t, harness.Options{Binary: pluginBin, Workers: 2})
	k.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	if _, err := k.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddPlugin(harness.PluginConfig{ID: e.pid, Service: "orders", Config: cfg}); err != nil {
		t.Fatalf("plugin config refused: %v", err)
	}
	return k
}

// getFrom sends one request through the given node.
func (e *env) getFrom(k *harness.Kong, path string) (int, string, http.Header) {
	e.t.Helper()
	resp, err := e.http.Get(k.URL() + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header
}

func message(body string) string {
	var m struct{ Message string }
	_ = json.Unmarshal([]byte(body), &m)
	return m.Message
}

// One limit shared by two Kong nodes: 10 admitted cluster-wide, the rest
// 429 with Kong's body and headers; hide_client_headers removes them.
func TestGuardsRateLimitTwoNodes(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	cfg := guardsConfig(e, map[string]any{
		// By IP: both nodes see 127.0.0.1. (By service the key is the Kong
		// service id, which differs between two harness nodes.)
		"rate_limit": map[string]any{"enabled": true, "requests_per_min": 1, "burst": 9, "limit_by": "ip"},
	})
	if err := e.kong.UpdatePlugin(e.pid, cfg); err != nil {
		t.Fatal(err)
	}
	node2 := e.addNode(t, cfg)
	ok, limited := 0, 0
	for i := 0; i < 16; i++ {
		node := e.kong
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
	cfg = guardsConfig(e, map[string]any{
		"rate_limit": map[string]any{"enabled": true, "requests_per_min": 1, "burst": 9, "limit_by": "ip",
			"hide_client_headers": true, "error_code": 403, "error_message": "quota"},
	})
	for _, k := range []*harness.Kong{e.kong, node2} {
		if err := k.UpdatePlugin(e.pid, cfg); err != nil {
			t.Fatal(err)
		}
		status, body, h := e.getFrom(k, "/orders")
		if status != 403 || message(body) != "quota" {
			t.Fatalf("hidden: %d %s", status, body)
		}
		for name := range h {
			if strings.Contains(strings.ToLower(name), "ratelimit") || name == "Retry-After" {
				t.Fatalf("hide_client_headers: header %s sent: %v", name, h)
			}
		}
	}
}

// A failing instance opens on the node that saw the failures and, through
// the cluster sync, on the other node that never saw them; when every
// instance is open: 503 + Retry-After; half-open probes close them again.
func TestGuardsBreakerTwoNodes(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}})
	cfg := guardsConfig(e, map[string]any{
		"circuit_breaker": map[string]any{"enabled": true, "failure_threshold": 5, "timeout_ms": 1500},
	})
	if err := e.kong.UpdatePlugin(e.pid, cfg); err != nil {
		t.Fatal(err)
	}
	node2 := e.addNode(t, cfg)
	a, b := e.bes["a"], e.bes["b"]
	b.status.Store(500)
	// Node 1 only, until it stops sending to b.
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
	// Node 2 learns it from Redis (sync every 200 ms) before it could open
	// it by its own count (5 failures): fewer than 5 of its requests reach
	// b (one every ~100 ms at this pace, round robin with a). Node 2 has
	// learned once 4 requests in a row miss b (b passed over twice); hits
	// after that are half-open probes (timeout_ms 1500 can end during this
	// loop), which reopen b, so they do not count.
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

	// Now a fails too: once it is open, every instance is: 503 + Retry-After.
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
	// Both healthy again: half-open probes close both, on both nodes.
	a.status.Store(0)
	b.status.Store(0)
	for _, k := range []*harness.Kong{e.kong, node2} {
		seen := map[string]bool{}
		waitFor(t, 15*time.Second, "both instances back in rotation", func() bool {
			status, _, h := e.getFrom(k, "/orders")
			if status == 200 {
				seen[h.Get("X-Instance")] = true
			}
			return seen["a"] && seen["b"]
		})
	}
}

// An instance that refuses connections: Kong answers 502 itself (no code in
// tries[]); the breaker counts it as a failure and traffic moves.
func TestGuardsBreakerConnectionRefused(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "dead": 1}})
	dead := e.bes["dead"]
	dead.srv.Close() // the address stays registered; nothing listens
	if err := e.kong.UpdatePlugin(e.pid, guardsConfig(e, map[string]any{
		"circuit_breaker": map[string]any{"enabled": true, "failure_threshold": 2, "timeout_ms": 60000},
	})); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i := 0; i < 30; i++ {
		status, _, h := e.get("/orders")
		switch {
		case status == 502:
			bad++
		case status != 200 || h.Get("X-Instance") != "a":
			t.Fatalf("request %d: %d from %q", i+1, status, h.Get("X-Instance"))
		}
	}
	// Outcomes are recorded in the log phase, after the response: allow
	// requests whose access ran before the previous log.
	if bad < 2 || bad > 2+2 {
		t.Fatalf("%d requests failed on the dead instance, threshold 2", bad)
	}
}

// Redis killed: routing continues from the cache; fault_tolerant = true
// admits without headers, fault_tolerant = false answers 500 like Kong; the
// breaker keeps breaking on local counts; after Redis returns, limiting
// resumes without a restart.
func TestGuardsRedisKilled(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}, redis: redistest.Options{AppendFsync: "always"}})
	limit := func(tolerant bool) map[string]any {
		return guardsConfig(e, map[string]any{
			"rate_limit":      map[string]any{"enabled": true, "requests_per_min": 1, "burst": 1000, "limit_by": "ip", "fault_tolerant": tolerant},
			"circuit_breaker": map[string]any{"enabled": true, "failure_threshold": 3, "timeout_ms": 60000},
		})
	}
	if err := e.kong.UpdatePlugin(e.pid, limit(true)); err != nil {
		t.Fatal(err)
	}
	if status, _, h := e.get("/orders"); status != 200 || h.Get("RateLimit-Limit") != "1" {
		t.Fatalf("Redis up: %d %v", status, h)
	}
	e.redis.Kill()
	byInst, st := e.load(40, 2, "/orders")
	if st[200] != 40 || byInst["a"] == 0 || byInst["b"] == 0 {
		t.Fatalf("fault tolerant, Redis dead: statuses %v instances %v", st, byInst)
	}
	// Local breaking: b fails, opens on this node's counts alone.
	e.bes["b"].status.Store(500)
	waitFor(t, 10*time.Second, "b open without Redis", func() bool {
		for i := 0; i < 10; i++ {
			if _, _, h := e.get("/orders"); h.Get("X-Instance") != "a" {
				return false
			}
		}
		return true
	})
	if status, _, h := e.get("/orders"); status != 200 || h.Get("RateLimit-Limit") != "" {
		t.Fatalf("fault tolerant without Redis: %d, headers %v", status, h)
	}

	// fault_tolerant = false: Kong's rate-limiting answers 500.
	if err := e.kong.UpdatePlugin(e.pid, limit(false)); err != nil {
		t.Fatal(err)
	}
	status, body, _ := e.get("/orders")
	if status != 500 || message(body) != "An unexpected error occurred" {
		t.Fatalf("fault_tolerant=false, Redis dead: %d %s", status, body)
	}
	e.redis.Restart()
	waitFor(t, 10*time.Second, "limiting resumed after Redis returned", func() bool {
		status, _, h := e.get("/orders")
		return status == 200 && h.Get("RateLimit-Limit") == "1"
	})
}

// Acceptance 4 of issue 5, counted by the harness per request: discovery +
// rate limit by IP + breaker: access {get_forwarded_ip, set_headers,
// set_target}, log {serialize}: 4 calls, 2 events; rate-limited: ip, exit,
// serialize; breaker off: the log event makes no call; hidden headers save
// set_headers.
func TestGuardsPDKBudget(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}})
	run := func(sections map[string]any, n int) []*harness.RequestStats {
		t.Helper()
		if err := e.kong.UpdatePlugin(e.pid, guardsConfig(e, sections)); err != nil {
			t.Fatal(err)
		}
		e.get("/orders") // the new config's instances start on the first request
		if err := e.kong.WaitIdle(e.ctx()); err != nil {
			t.Fatal(err)
		}
		e.kong.ResetRequests()
		for i := 0; i < n; i++ {
			e.get("/orders")
		}
		rs, err := e.kong.WaitRequests(e.ctx(), n)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	calls := func(r *harness.RequestStats, want map[string]int) bool {
		if len(r.Calls) != len(want) {
			return false
		}
		for m, n := range want {
			if r.Calls[m] != n {
				return false
			}
		}
		return true
	}
	// rate limit 1/min + burst 8: the warm-up request and 8 more admitted.
	rs := run(map[string]any{
		"rate_limit":      map[string]any{"enabled": true, "requests_per_min": 1, "burst": 8, "limit_by": "ip"},
		"circuit_breaker": map[string]any{"enabled": true},
	}, 12)
	proxied, limited := 0, 0
	for _, r := range rs {
		switch r.Status {
		case 200:
			proxied++
			if !calls(r, map[string]int{"kong.client.get_forwarded_ip": 1, "kong.response.set_headers": 1,
				"kong.service.set_target": 1, "kong.log.serialize": 1}) ||
				r.TotalCalls() > 4 || r.Events["access"] != 1 || r.Events["log"] != 1 || r.TotalEvents() != 2 ||
				r.CallsByPhase["access"] > 3 || r.CallsByPhase["log"] != 1 {
				t.Errorf("proxied request over budget: %v", r)
			}
		case 429:
			limited++
			if !calls(r, map[string]int{"kong.client.get_forwarded_ip": 1, "kong.response.exit": 1, "kong.log.serialize": 1}) ||
				r.TotalCalls() > 3 {
				t.Errorf("rate-limited request over budget: %v", r)
			}
		default:
			t.Errorf("unexpected %v", r)
		}
	}
	if proxied != 8 || limited != 4 {
		t.Fatalf("proxied %d, limited %d; want 8 and 4", proxied, limited)
	}
	// Breaker off, headers hidden: access {ip, set_target}, log nothing.
	rs = run(map[string]any{
		"rate_limit": map[string]any{"enabled": true, "requests_per_min": 1, "burst": 1000, "limit_by": "ip", "hide_client_headers": true},
	}, 5)
	for _, r := range rs {
		if r.Status != 200 || r.CallsByPhase["log"] != 0 ||
			!calls(r, map[string]int{"kong.client.get_forwarded_ip": 1, "kong.service.set_target": 1}) {
			t.Errorf("breaker off, headers hidden: %v", r)
		}
	}
}

// registry = kong with both guards: Kong's upstream picks, the limiter
// answers, the breaker records what Kong's balancer tried.
func TestGuardsRegistryKong(t *testing.T) {
	e := newEnv(t, envOptions{})
	up := newBackend(t, "k1")
	e.kong.AddUpstream(harness.Upstream{Name: "kup", Targets: []harness.Target{{Target: up.addr()}}})
	e.kong.AddService(harness.Service{Name: "ksvc", Host: "kup", Retries: harness.Int(0)})
	if _, err := e.kong.AddRoute(harness.Route{Name: "krt", Service: "ksvc", Paths: []string{"/k"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kong.AddPlugin(harness.PluginConfig{Service: "ksvc", Config: map[string]any{
		"registry":        "kong",
		"redis":           map[string]any{"host": "127.0.0.1", "port": e.redis.Port, "timeout_ms": 2000},
		"rate_limit":      map[string]any{"enabled": true, "requests_per_min": 1, "burst": 2, "limit_by": "service"},
		"circuit_breaker": map[string]any{"enabled": true},
	}}); err != nil {
		t.Fatal(err)
	}
	e.kong.ResetRequests()
	statuses := map[int]int{}
	for i := 0; i < 4; i++ {
		status, _, _ := e.get("/k/x")
		statuses[status]++
	}
	if statuses[200] != 3 || statuses[429] != 1 || up.hits.Load() != 3 {
		t.Fatalf("statuses %v, upstream hits %d", statuses, up.hits.Load())
	}
	rs, err := e.kong.WaitRequests(e.ctx(), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		// limit_by service: the identity is in the config, no client IP call.
		if r.Calls["kong.client.get_forwarded_ip"] != 0 || r.Calls["kong.service.set_target"] != 0 || r.TotalCalls() > 3 {
			t.Errorf("registry=kong request: %v", r)
		}
	}
	// The breaker's counts reach Redis under the target Kong picked.
	host, port, _ := net.SplitHostPort(up.addr())
	rdb := e.redis.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	waitFor(t, 5*time.Second, "breaker state of the Kong-picked target in Redis", func() bool {
		keys, err := rdb.Keys(e.ctx(), "*{cb:*|"+host+":"+port+"}").Result()
		return err == nil && len(keys) > 0
	})
}
