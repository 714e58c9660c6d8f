package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/breaker"
)

// tries renders a kong.log.serialize document with the given tries
// (ip:port:code:state, code and state optional), final status and source.
func serializedDoc(status int, source string, tries ...string) string {
	var parts []string
	for _, t := range tries {
		f := strings.Split(t, ":")
		m := fmt.Sprintf(`{"ip":%q,"port":%s,"balancer_start":1,"balancer_latency":0`, f[0], f[1])
		if len(f) > 2 && f[2] != "" {
			m += `,"code":` + f[2]
		}
		if len(f) > 3 {
			m += fmt.Sprintf(`,"state":%q`, f[3])
		}
		parts = append(parts, m+"}")
	}
	doc := fmt.Sprintf(`{"request":{"uri":"/x","headers":{"host":"h"}},"response":{"status":%d,"headers":{}},"source":%q,"upstream_uri":"/x"`, status, source)
	if len(parts) > 0 {
		doc += `,"tries":[` + strings.Join(parts, ",") + `]`
	}
	return doc + "}"
}

// Limits are GCRA (DESIGN decision 5): requests_per_min 3 is one request
// every 20 s; burst 2 lets 3 come at once, as a client of Kong's
// rate-limiting would expect of "3 per minute".
func TestRateLimitByIP(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "rl", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"rl","__plugin_id":"p-rl","rate_limit":{"enabled":true,"requests_per_min":3,"burst":2,"limit_by":"ip"}`)
	for i := 0; i < 3; i++ {
		k := &fakeKong{ip: "192.0.2.1"}
		c.access(k)
		want := []string{"kong.client.get_forwarded_ip", "kong.response.set_headers", "kong.service.set_target"}
		if !slices.Equal(k.calls, want) || k.host != "10.0.0.1" {
			t.Fatalf("request %d: calls %v target %q (%d %s)", i+1, k.calls, k.host, k.status, k.body)
		}
		h := k.headers
		if h["RateLimit-Limit"][0] != "3" || h["X-RateLimit-Limit-Minute"][0] != "3" ||
			h["RateLimit-Remaining"][0] != strconv.Itoa(2-i) || h["X-RateLimit-Remaining-Minute"][0] != strconv.Itoa(2-i) ||
			h["RateLimit-Reset"][0] == "" || h["Retry-After"] != nil {
			t.Fatalf("request %d headers %v", i+1, h)
		}
	}
	k := &fakeKong{ip: "192.0.2.1"}
	c.access(k)
	if k.status != 429 || k.body != `{"message":"API rate limit exceeded"}` || k.host != "" ||
		!slices.Equal(k.calls, []string{"kong.client.get_forwarded_ip", "kong.response.exit"}) {
		t.Fatalf("over limit: %d %s calls %v", k.status, k.body, k.calls)
	}
	h := k.exitHeaders
	if h["Retry-After"] == nil || h["RateLimit-Remaining"][0] != "0" || h["X-RateLimit-Remaining-Minute"][0] != "0" ||
		h["Content-Type"][0] != "application/json; charset=utf-8" || h["RateLimit-Reset"][0] != h["Retry-After"][0] {
		t.Fatalf("429 headers %v", h)
	}
	if ra, _ := strconv.Atoi(h["Retry-After"][0]); ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %d", ra)
	}
	// Another client has its own counter.
	k = &fakeKong{ip: "192.0.2.2"}
	c.access(k)
	if k.status != 0 || k.host != "10.0.0.1" {
		t.Fatalf("other IP: %d %s", k.status, k.body)
	}
	// The breaker is off: the log phase makes no PDK call.
	c.log(k)
	if k.calls[len(k.calls)-1] == "kong.log.serialize" {
		t.Fatalf("log phase with breaker off called serialize")
	}
}

func TestRateLimitHiddenHeadersAndCustomAnswer(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "rh", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"rh","__plugin_id":"p-rh","rate_limit":{"enabled":true,"requests_per_second":1,`+
		`"limit_by":"service","hide_client_headers":true,"error_code":418,"error_message":"slow down"}`)
	k := &fakeKong{}
	c.access(k)
	// limit_by service: the identity is in the config, no PDK call; hidden
	// headers: no set_headers either.
	if !slices.Equal(k.calls, []string{"kong.service.set_target"}) {
		t.Fatalf("admitted: calls %v (%d %s)", k.calls, k.status, k.body)
	}
	k = &fakeKong{}
	c.access(k)
	if k.status != 418 || k.body != `{"message":"slow down"}` || len(k.exitHeaders) != 1 || k.exitHeaders["Content-Type"] == nil {
		t.Fatalf("denied: %d %s %v", k.status, k.body, k.exitHeaders)
	}
	if !slices.Equal(k.calls, []string{"kong.response.exit"}) {
		t.Fatalf("denied: calls %v", k.calls)
	}
}

func TestRateLimitByRouteAndFallbackIdentity(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "rr", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"rr","__plugin_id":"p-rr","route_id":{"id":"route-1"},"rate_limit":{"enabled":true,"requests_per_min":100,"limit_by":"route"}`)
	k := &fakeKong{}
	c.access(k)
	if !slices.Equal(k.calls, []string{"kong.response.set_headers", "kong.service.set_target"}) {
		t.Fatalf("by route: calls %v", k.calls)
	}
	// limit_by header without the header: the client IP, like Kong.
	c = fx.config(t, `,"service":"rr","__plugin_id":"p-rh2","rate_limit":{"enabled":true,"requests_per_min":1,"limit_by":"header","header_name":"X-Key"}`)
	for _, ip := range []string{"192.0.2.7", "192.0.2.8"} {
		k = &fakeKong{ip: ip}
		c.access(k)
		if k.status != 0 || !slices.Equal(k.calls, []string{"kong.request.get_header", "kong.client.get_forwarded_ip", "kong.response.set_headers", "kong.service.set_target"}) {
			t.Fatalf("header fallback %s: %d calls %v", ip, k.status, k.calls)
		}
	}
	k = &fakeKong{ip: "192.0.2.9", reqHeaders: map[string]string{"X-Key": "k1"}}
	c.access(k)
	k = &fakeKong{ip: "192.0.2.10", reqHeaders: map[string]string{"X-Key": "k1"}}
	c.access(k)
	if k.status != 429 {
		t.Fatalf("same header value, second request: %d", k.status)
	}
}

// Redis down: fault_tolerant = false answers 500 like Kong's rate-limiting;
// fault_tolerant = true lets the request through (from the cached snapshot).
func TestRateLimitRedisDown(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "rd", "a", "10.0.0.1:80", 1)
	closed := fx.config(t, `,"service":"rd","__plugin_id":"p-closed","rate_limit":{"enabled":true,"requests_per_min":100,"fault_tolerant":false}`)
	open := fx.config(t, `,"service":"rd","__plugin_id":"p-open","rate_limit":{"enabled":true,"requests_per_min":100}`)
	for _, c := range []*Config{closed, open} {
		k := &fakeKong{}
		c.access(k)
		if k.host != "10.0.0.1" {
			t.Fatalf("Redis up: %d %s", k.status, k.body)
		}
	}
	fx.srv.Kill()
	k := &fakeKong{}
	closed.access(k)
	if k.status != 500 || k.body != `{"message":"An unexpected error occurred"}` || k.host != "" {
		t.Fatalf("fault_tolerant=false, Redis down: %d %s target %q", k.status, k.body, k.host)
	}
	for i := 0; i < 3; i++ {
		k = &fakeKong{}
		open.access(k)
		if k.status != 0 || k.host != "10.0.0.1" || k.headers != nil {
			t.Fatalf("fault_tolerant=true, Redis down: %d %s headers %v", k.status, k.body, k.headers)
		}
	}
}

func breakerConfig(t *testing.T, fx *fixture, svc, extra string) *Config {
	return fx.config(t, `,"service":"`+svc+`","circuit_breaker":{"enabled":true,"failure_threshold":2,"timeout_ms":5000`+extra+`}`)
}

// The log phase records the outcome of the try actually made; open
// instances are skipped; when all are open: error_code + Retry-After.
func TestBreakerSkipsOpenAndAnswers503(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "br", "a", "10.0.0.1:80", 1)
	fx.put(t, "br", "b", "10.0.0.2:80", 1)
	c := breakerConfig(t, fx, "br", `,"error_code":599`)
	fail := func(addr string) {
		ip, port, _ := strings.Cut(addr, ":")
		k := &fakeKong{serialized: serializedDoc(500, "upstream", ip+":"+port)}
		c.log(k)
		if !slices.Equal(k.calls, []string{"kong.log.serialize"}) {
			t.Fatalf("log calls %v", k.calls)
		}
	}
	b := c.compile().breakers
	fail("10.0.0.1:80")
	fail("10.0.0.1:80")
	if st := b.State("10.0.0.1:80"); st != breaker.Open {
		t.Fatalf("a after 2 failures: %v", st)
	}
	for i := 0; i < 10; i++ {
		k := &fakeKong{}
		c.access(k)
		if k.host != "10.0.0.2" || !slices.Equal(k.calls, []string{"kong.service.set_target"}) {
			t.Fatalf("with a open: target %q calls %v", k.host, k.calls)
		}
	}
	fail("10.0.0.2:80")
	fail("10.0.0.2:80")
	k := &fakeKong{}
	c.access(k)
	if k.status != 599 || k.body != `{"message":"circuit breaker open for every instance of service br"}` || k.host != "" {
		t.Fatalf("all open: %d %s", k.status, k.body)
	}
	ra, err := strconv.Atoi(k.exitHeaders["Retry-After"][0])
	if err != nil || ra < 1 || ra > 5 || k.exitHeaders["Content-Type"] == nil {
		t.Fatalf("all open headers %v", k.exitHeaders)
	}
	// A request the plugin answered has no tries: nothing recorded.
	k = &fakeKong{serialized: serializedDoc(599, "kong")}
	c.log(k)
	if len(k.calls) != 1 {
		t.Fatalf("log calls %v", k.calls)
	}
}

// Classification of what kong.log.serialize reports.
func TestBreakerRecordsTries(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "bt", "a", "10.0.0.1:80", 1)
	c := breakerConfig(t, fx, "bt", `,"failure_statuses":[500]`)
	b := c.compile().breakers
	rec := func(doc string) { c.log(&fakeKong{serialized: doc}) }

	// 503 is not a failure status here; successes keep it closed.
	for i := 0; i < 5; i++ {
		rec(serializedDoc(503, "upstream", "10.0.0.1:80"))
		rec(serializedDoc(200, "upstream", "10.0.0.1:80"))
	}
	if b.State("10.0.0.1:80") != breaker.Closed {
		t.Fatal("opened on non-failure statuses")
	}
	// Kong answering 502 itself after the try: connection refused. One
	// failure, then a success resets the count.
	rec(serializedDoc(502, "kong", "10.0.0.1:80"))
	rec(serializedDoc(200, "upstream", "10.0.0.1:80"))
	rec(serializedDoc(502, "kong", "10.0.0.1:80"))
	if b.State("10.0.0.1:80") != breaker.Closed {
		t.Fatal("opened on failures that were not consecutive")
	}
	// A retried request: the earlier failed try counts too (same target).
	rec(serializedDoc(502, "kong", "10.0.0.1:80::failed", "10.0.0.1:80"))
	if b.State("10.0.0.1:80") != breaker.Open {
		t.Fatalf("not open after retries failed: %v", b.State("10.0.0.1:80"))
	}
	// Another instance, only in tries: recorded under ip:port.
	rec(serializedDoc(200, "upstream", "10.0.0.3:81:500:next", "10.0.0.3:81"))
	if b.State("10.0.0.3:81") != breaker.Closed {
		t.Fatal("one failure opened 10.0.0.3:81")
	}
}

// Half-open: after timeout_ms one probe goes to the instance; its success
// closes it.
func TestBreakerHalfOpenProbe(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "hp", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"hp","circuit_breaker":{"enabled":true,"failure_threshold":1,"timeout_ms":50}`)
	b := c.compile().breakers
	c.log(&fakeKong{serialized: serializedDoc(500, "upstream", "10.0.0.1:80")})
	k := &fakeKong{}
	c.access(k)
	if k.status != 503 || k.exitHeaders["Retry-After"][0] != "1" {
		t.Fatalf("open: %d %v", k.status, k.exitHeaders)
	}
	// Wait for the probe to be admitted (open period over, token granted
	// by the cluster sync).
	deadline := time.Now().Add(5 * time.Second)
	for {
		k = &fakeKong{}
		c.access(k)
		if k.host == "10.0.0.1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe admitted: %d %s, state %v", k.status, k.body, b.State("10.0.0.1:80"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.log(&fakeKong{serialized: serializedDoc(200, "upstream", "10.0.0.1:80")})
	if st := b.State("10.0.0.1:80"); st != breaker.Closed {
		t.Fatalf("after a good probe: %v", st)
	}
}

// Acceptance 4 of issue 5 at handler level: discovery + rate limit by IP +
// breaker: access ≤ 3 calls, log 1; rate-limited ≤ 3 in all.
func TestGuardsPDKBudget(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "bud", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"bud","__plugin_id":"p-bud","rate_limit":{"enabled":true,"requests_per_min":5,"burst":4,"per_ip":true},"circuit_breaker":{"enabled":true}`)
	for i := 0; i < 8; i++ {
		k := &fakeKong{ip: "198.51.100.1", serialized: serializedDoc(200, "upstream", "10.0.0.1:80")}
		c.access(k)
		access := len(k.calls)
		if k.status == 429 {
			k.serialized = serializedDoc(429, "kong")
		}
		c.log(k)
		logCalls := len(k.calls) - access
		switch {
		case i < 5 && (k.status != 0 || access > 3 || logCalls != 1 || access+logCalls > 4):
			t.Fatalf("admitted request %d: status %d calls %v", i, k.status, k.calls)
		case i >= 5 && (k.status != 429 || access+logCalls > 3):
			t.Fatalf("limited request %d: status %d calls %v", i, k.status, k.calls)
		}
	}
}

// registry = kong: Kong's balancer picks; the guards still work, the
// breaker only records.
func TestGuardsRegistryKong(t *testing.T) {
	fx := newFixture(t)
	c := decode(t, fmt.Sprintf(`{"registry":"kong","__plugin_id":"p-kong","service_id":"svc-kong","redis":{"port":%d,"timeout_ms":200},`+
		`"rate_limit":{"enabled":true,"requests_per_min":1,"limit_by":"service","hide_client_headers":true},`+
		`"circuit_breaker":{"enabled":true,"failure_threshold":1}}`, fx.srv.Port))
	k := &fakeKong{}
	c.access(k)
	if len(k.calls) != 0 || k.status != 0 {
		t.Fatalf("pass-through: %d calls %v", k.status, k.calls)
	}
	k = &fakeKong{}
	c.access(k)
	if k.status != 429 {
		t.Fatalf("second request: %d", k.status)
	}
	c.log(&fakeKong{serialized: serializedDoc(500, "upstream", "10.1.1.1:8000")})
	if st := c.compile().breakers.State("10.1.1.1:8000"); st != breaker.Open {
		t.Fatalf("kong-picked target not recorded: %v", st)
	}
}

// A client cannot steer the breaker with headers named like serialize's
// top-level keys: only top-level values are read.
func TestBreakerIgnoresLookalikeHeaders(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "la", "a", "10.0.0.1:80", 1)
	c := breakerConfig(t, fx, "la", `,"failure_statuses":[500]`)
	b := c.compile().breakers
	doc := `{"request":{"headers":{"tries":[{"ip":"10.0.0.1","port":80,"code":500,"state":"failed"}],"source":"kong","status":500}},` +
		`"response":{"headers":{"status":"500"},"status":200},"source":"upstream","tries":[{"ip":"10.0.0.1","port":80}]}`
	for i := 0; i < 5; i++ {
		c.log(&fakeKong{serialized: doc})
	}
	if st := b.State("10.0.0.1:80"); st != breaker.Closed {
		t.Fatalf("opened by header contents: %v", st)
	}
}

// topLevel sees exactly the keys encoding/json sees, with the same values.
func FuzzTopLevel(f *testing.F) {
	f.Add(serializedDoc(502, "kong", "10.0.0.1:80::failed", "10.0.0.1:80"))
	f.Add(realisticDoc("127.0.0.1", 8080))
	f.Add(`{}`)
	f.Add(` { "a" : [1, {"b":"}\"]"}] , "c":null,"d":-1.5e3 } `)
	f.Add(`{"a":1,}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal([]byte(doc), &want)
		got := map[string]string{}
		ok := topLevel([]byte(doc), func(k, v []byte) { got[string(k)] = string(v) })
		if wantErr != nil {
			return // malformed input: topLevel may accept a superset, never panics
		}
		if !ok {
			if strings.Contains(doc, `\u`) || strings.ContainsAny(doc, "\x00\x1f") {
				return
			}
			t.Fatalf("valid object refused: %q", doc)
		}
		for k, v := range want {
			if g, found := got[k]; found && !jsonEqual(g, string(v)) {
				t.Fatalf("key %q: got %s want %s", k, g, v)
			}
		}
	})
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// An instance registered by host name: Kong tries it under the resolved
// IP; the breaker must count that against the instance the picker knows.
func TestBreakerHostNameInstance(t *testing.T) {
	ips := hostIPs.lookup("localhost")
	if !slices.Contains(ips, "127.0.0.1") {
		t.Skipf("localhost resolves to %v here", ips)
	}
	fx := newFixture(t)
	fx.put(t, "hn", "named", "localhost:8181", 1)
	fx.put(t, "hn", "ip", "10.0.0.2:8181", 1)
	c := breakerConfig(t, fx, "hn", "")
	c.access(&fakeKong{}) // load the snapshot
	for i := 0; i < 2; i++ {
		c.log(&fakeKong{serialized: serializedDoc(502, "kong", "127.0.0.1:8181")})
	}
	b := c.compile().breakers
	if st := b.State("localhost:8181"); st != breaker.Open {
		t.Fatalf("named instance: %v (127.0.0.1:8181: %v)", st, b.State("127.0.0.1:8181"))
	}
	for i := 0; i < 6; i++ {
		k := &fakeKong{}
		c.access(k)
		if k.host != "10.0.0.2" {
			t.Fatalf("request %d went to %q with the named instance open", i, k.host)
		}
	}
}

// The seed's global plugin (no service_id, no service) with the default
// limit_by = service counts per matched Kong service, as Kong's
// rate-limiting does (get_identifier: kong.router.get_service().id), not
// per client IP: one get_service replaces the IP call.
func TestRateLimitGlobalByMatchedService(t *testing.T) {
	fx := newFixture(t)
	c := decode(t, fmt.Sprintf(`{"registry":"kong","__plugin_id":"p-global","redis":{"port":%d,"timeout_ms":200},`+
		`"rate_limit":{"enabled":true,"requests_per_min":1}}`, fx.srv.Port))
	k := &fakeKong{ip: "192.0.2.1", svcID: "svc-a", svcName: "a"}
	c.access(k)
	if k.status != 0 || !slices.Equal(k.calls, []string{"kong.router.get_service", "kong.response.set_headers"}) {
		t.Fatalf("first request: %d calls %v", k.status, k.calls)
	}
	// Another client of the same service shares its counter.
	k = &fakeKong{ip: "192.0.2.2", svcID: "svc-a", svcName: "a"}
	c.access(k)
	if k.status != 429 || !slices.Equal(k.calls, []string{"kong.router.get_service", "kong.response.exit"}) {
		t.Fatalf("same service, other IP: %d calls %v", k.status, k.calls)
	}
	// Another service has its own.
	k = &fakeKong{ip: "192.0.2.2", svcID: "svc-b", svcName: "b"}
	c.access(k)
	if k.status != 0 {
		t.Fatalf("other service: %d %s", k.status, k.body)
	}
	// The name learned on the way serves a service-scoped config later.
	if v, ok := serviceNames.Load("svc-b"); !ok || v.(string) != "b" {
		t.Fatalf("service name not cached: %v %v", v, ok)
	}
	// No service matched: the client IP, like Kong.
	for _, ip := range []string{"192.0.2.3", "192.0.2.4"} {
		k = &fakeKong{ip: ip}
		c.access(k)
		if k.status != 0 || !slices.Equal(k.calls, []string{"kong.router.get_service", "kong.client.get_forwarded_ip", "kong.response.set_headers"}) {
			t.Fatalf("no service, %s: %d calls %v", ip, k.status, k.calls)
		}
	}
}

// A global plugin with registry = redis needs the matched service twice
// (rate-limit identity, registry service name): one get_service serves
// both, so access stays within 3 PDK calls.
func TestRateLimitGlobalRedisSharesGetService(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "gs", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"__plugin_id":"p-gs","rate_limit":{"enabled":true,"requests_per_min":1}`)
	k := &fakeKong{ip: "192.0.2.1", svcID: "svc-gs", svcName: "gs"}
	c.access(k)
	want := []string{"kong.router.get_service", "kong.response.set_headers", "kong.service.set_target"}
	if k.status != 0 || k.host != "10.0.0.1" || !slices.Equal(k.calls, want) {
		t.Fatalf("admitted: %d %s target %q calls %v", k.status, k.body, k.host, k.calls)
	}
	k = &fakeKong{ip: "192.0.2.2", svcID: "svc-gs", svcName: "gs"}
	c.access(k)
	if k.status != 429 || !slices.Equal(k.calls, []string{"kong.router.get_service", "kong.response.exit"}) {
		t.Fatalf("same service, other IP: %d calls %v", k.status, k.calls)
	}
}

// limit_by = route on a service-scoped plugin (as adminsvc writes it: no
// route_id in the config) counts per matched route (kong.router.get_route),
// not per client IP.
func TestRateLimitByMatchedRoute(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "mr", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"mr","__plugin_id":"p-mr","service_id":{"id":"svc-mr"},"rate_limit":{"enabled":true,"requests_per_min":1,"limit_by":"route"}`)
	k := &fakeKong{ip: "192.0.2.1", routeID: "route-1"}
	c.access(k)
	if k.status != 0 || !slices.Equal(k.calls, []string{"kong.router.get_route", "kong.response.set_headers", "kong.service.set_target"}) {
		t.Fatalf("first request: %d calls %v", k.status, k.calls)
	}
	k = &fakeKong{ip: "192.0.2.2", routeID: "route-1"}
	c.access(k)
	if k.status != 429 || !slices.Equal(k.calls, []string{"kong.router.get_route", "kong.response.exit"}) {
		t.Fatalf("same route, other IP: %d calls %v", k.status, k.calls)
	}
	k = &fakeKong{ip: "192.0.2.2", routeID: "route-2"}
	c.access(k)
	if k.status != 0 || k.host != "10.0.0.1" {
		t.Fatalf("other route: %d %s", k.status, k.body)
	}
}

// The default failure_statuses (every 5xx, 100 values) reaches the breaker
// as its nil "500-599" form, which classifies in constant time (~3 ns
// instead of ~36 ns per try for a 100-entry scan); a custom list is kept.
func TestBreakerEvery5xxFastPath(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "fp", "a", "10.0.0.1:80", 1)
	c := breakerConfig(t, fx, "fp", "")
	st := c.compile().breakers.Settings()
	if st.FailureStatuses != nil {
		t.Fatalf("default statuses reach the breaker as a %d-entry list", len(st.FailureStatuses))
	}
	for code, want := range map[int]breaker.Outcome{500: breaker.Failure, 599: breaker.Failure, 200: breaker.Success, 499: breaker.Success} {
		if got := st.Classify(code, false); got != want {
			t.Errorf("Classify(%d) = %v, want %v", code, got, want)
		}
	}
	c = breakerConfig(t, fx, "fp", `,"failure_statuses":[503]`)
	if st := c.compile().breakers.Settings(); !slices.Equal(st.FailureStatuses, []int{503}) || st.Classify(500, false) != breaker.Success {
		t.Fatalf("custom list: %v", st.FailureStatuses)
	}
}

// A global registry=redis plugin limiting by route asks get_route for the
// identity; the route carries its service's id, so the registry name comes
// from the id → name cache and get_service is spent once per Kong service,
// not per request: access stays within 3 PDK calls.
func TestRateLimitGlobalRedisByRouteBudget(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "gr", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"__plugin_id":"p-gr","rate_limit":{"enabled":true,"requests_per_min":1,"burst":5,"limit_by":"route"}`)
	first := []string{"kong.router.get_route", "kong.response.set_headers", "kong.router.get_service", "kong.service.set_target"}
	steady := []string{"kong.router.get_route", "kong.response.set_headers", "kong.service.set_target"}
	for i, want := range [][]string{first, steady, steady} {
		k := &fakeKong{ip: fmt.Sprintf("192.0.2.%d", i+1), routeID: "route-gr", svcID: "svc-gr", svcName: "gr"}
		c.access(k)
		if k.status != 0 || k.host != "10.0.0.1" || !slices.Equal(k.calls, want) {
			t.Fatalf("request %d: %d %s target %q calls %v", i+1, k.status, k.body, k.host, k.calls)
		}
	}
}
