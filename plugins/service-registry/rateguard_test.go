package main

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
)

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
		// Remaining is 2, 1, 0 however far apart the requests come: one
		// interval is 20.8 s, and 3 per minute never leases (a lease is at
		// most requests_per_min/50 units, here 1), so every decision is
		// Redis' own.
		h := k.headers
		if first(h, "RateLimit-Limit") != "3" || first(h, "X-RateLimit-Limit-Minute") != "3" ||
			first(h, "RateLimit-Remaining") != strconv.Itoa(2-i) || first(h, "X-RateLimit-Remaining-Minute") != strconv.Itoa(2-i) ||
			first(h, "RateLimit-Reset") == "" || h["Retry-After"] != nil {
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
	if h["Retry-After"] == nil || first(h, "RateLimit-Remaining") != "0" || first(h, "X-RateLimit-Remaining-Minute") != "0" ||
		first(h, "Content-Type") != "application/json; charset=utf-8" || first(h, "RateLimit-Reset") != first(h, "Retry-After") {
		t.Fatalf("429 headers %v", h)
	}
	if ra, _ := strconv.Atoi(first(h, "Retry-After")); ra < 1 || ra > 60 {
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

// The seed's global plugin (no service_id, no service) with the default
// limit_by = service counts per matched Kong service, as Kong's
// rate-limiting does (get_identifier: kong.router.get_service().id), not
// per client IP: one get_service replaces the IP call.
func TestRateLimitGlobalByMatchedService(t *testing.T) {
	fx := newFixture(t)
	c := decode(t, fmt.Sprintf(`{"registry":"kong","__plugin_id":"p-global","redis":{"port":%d,"timeout_ms":5000},`+
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

// A global registry=redis plugin limiting by route asks get_route for the
// identity; the route carries its service's id, so the registry name comes
// from the id → name cache and get_service is spent once per Kong service,
// not per request: access stays within 3 PDK calls.
func TestRateLimitGlobalRedisByRouteBudget(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "gr", "a", "10.0.0.1:80", 1)
	// The id → name cache is the process's: with -count > 1 an earlier run
	// has learned svc-gr, and the first request would not ask get_service.
	serviceNames.Delete("svc-gr")
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

// first is a header's first value, "" when it is missing (a missing header
// fails the comparison instead of panicking the test).
func first(h map[string][]string, name string) string {
	if len(h[name]) == 0 {
		return ""
	}
	return h[name][0]
}
