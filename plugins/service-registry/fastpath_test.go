package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

func (fx *fixture) register(t *testing.T, host, path, backend, options string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := registry.Route{Host: host, Path: path, Backend: backend}
	if options != "" {
		r.Options = json.RawMessage(options)
	}
	if _, _, err := fx.store.RegisterRoute(ctx, r); err != nil {
		t.Fatal(err)
	}
}

// fastAccess runs the catch-all's access phase for host and path.
func fastAccess(c *Config, host, path string, headers map[string]string) *fakeKong {
	k := &fakeKong{path: path, reqHeaders: map[string]string{"host": host}}
	for n, v := range headers {
		k.reqHeaders[n] = v
	}
	c.access(k)
	return k
}

// TestFastPathServesRoute: a registered route is served on the catch-all
// with its own config: target from its snapshot, the client's Host
// upstream (preserve_host), the backend path joined as Kong joins it, its
// response headers; PDK calls counted.
func TestFastPathServesRoute(t *testing.T) {
	// fastBreakers is process-wide: another test that served a route with
	// a breaker set it, and the log-phase check below would pass blindly.
	was := fastBreakers.Swap(false)
	t.Cleanup(func() { fastBreakers.Store(was || fastBreakers.Load()) })
	fx := newFixture(t)
	fx.register(t, "a.example.com", "/api", "http://127.0.0.1:9001/base", `{"headers":{"X-Team":"a"}}`)
	fx.register(t, "a.example.com", "/", "http://127.0.0.1:9002", "")
	c := fx.config(t, `,"fast_path":true`)

	k := fastAccess(c, "a.example.com:8000", "/api/v1", nil)
	if k.host != "127.0.0.1" || k.port != 9001 || k.upstreamHost != "a.example.com:8000" || k.upstreamPath != "/base/api/v1" {
		t.Fatalf("target %s:%d host %q path %q, calls %v", k.host, k.port, k.upstreamHost, k.upstreamPath, k.calls)
	}
	if !reflect.DeepEqual(k.headers, map[string][]string{"X-Team": {"a"}}) {
		t.Fatalf("response headers %v", k.headers)
	}
	want := []string{"kong.request.get_header", "kong.request.get_path", "kong.service.set_target",
		"kong.service.request.set_header", "kong.service.request.set_path", "kong.response.set_headers"}
	if !reflect.DeepEqual(k.calls, want) {
		t.Fatalf("calls %v, want %v", k.calls, want)
	}
	// A backend without a path needs no set_path: the catch-all's own
	// upstream path is the request path already. 4 calls.
	k = fastAccess(c, "a.example.com", "/other", nil)
	if k.port != 9002 || k.upstreamPath != "" || len(k.calls) != 4 {
		t.Fatalf("port %d path %q calls %v", k.port, k.upstreamPath, k.calls)
	}
	// The table is in the plugin's metrics, labelled by its Redis.
	if got := fastRoutesMetric(t, fmt.Sprintf("127.0.0.1:%d", fx.srv.Port)); got != 2 {
		t.Fatalf("service_registry_fast_path_routes = %v, want 2", got)
	}
	// The log phase costs nothing while no fast-path route has a breaker.
	k = &fakeKong{}
	c.log(k)
	if len(k.calls) != 0 || fastBreakers.Load() {
		t.Fatalf("log calls %v", k.calls)
	}
}

// TestFastPathUnknownRoute: Kong's 404, negotiated from Accept, with the
// request id when Kong has one.
func TestFastPathUnknownRoute(t *testing.T) {
	fx := newFixture(t)
	fx.register(t, "a.example.com", "/api", "http://127.0.0.1:9001", "")
	c := fx.config(t, `,"fast_path":true`)
	for _, tc := range []struct{ host, path, accept, id, ctype, body string }{
		{"b.example.com", "/api", "", "", mimeJSON, "{\n  \"message\":\"no Route matched with those values\"\n}"},
		{"A.EXAMPLE.COM", "/api", "", "", mimeJSON, "{\n  \"message\":\"no Route matched with those values\"\n}"},
		{"a.example.com", "/ap", "text/plain", "", mimePlain, "no Route matched with those values\n"},
		{"a.example.com", "/", "text/html;q=0.5, application/xml", "abc", mimeXML,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>no Route matched with those values</message>\n  <requestid>abc</requestid>\n</error>\n"},
		{"x", "/", "application/json", "abc", mimeJSON, "{\n  \"message\":\"no Route matched with those values\",\n  \"request_id\":\"abc\"\n}"},
	} {
		k := &fakeKong{path: tc.path, reqHeaders: map[string]string{"host": tc.host, "accept": tc.accept},
			vars: map[string]string{"kong_request_id": tc.id}}
		c.access(k)
		if k.status != 404 || k.body != tc.body || !reflect.DeepEqual(k.exitHeaders, map[string][]string{"Content-Type": {tc.ctype}}) {
			t.Errorf("%s%s accept %q: %d %q %v", tc.host, tc.path, tc.accept, k.status, k.body, k.exitHeaders)
		}
		if len(k.calls) != 5 || k.host != "" {
			t.Errorf("%s%s: calls %v, target %q", tc.host, tc.path, k.calls, k.host)
		}
	}
}

// TestFastPathSharesDedicatedConfig: the route's config is the one the
// translator writes on its dedicated service, with Kong's ids, so the
// rate-limit key and the breaker scope are the dedicated route's.
func TestFastPathSharesDedicatedConfig(t *testing.T) {
	fx := newFixture(t)
	fx.register(t, "rl.example.com", "/", "https://127.0.0.1:9443/", `{"rate_limit":{"enabled":true,"requests_per_min":5},"circuit_breaker":{"enabled":true,"failure_threshold":3}}`)
	c := fx.config(t, `,"fast_path":true`)
	k := fastAccess(c, "rl.example.com", "/x", nil)
	if k.port != 9443 || k.scheme != "https" || k.upstreamPath != "" || k.headers["RateLimit-Limit"] == nil {
		t.Fatalf("port %d scheme %q path %q headers %v calls %v", k.port, k.scheme, k.upstreamPath, k.headers, k.calls)
	}
	if k.shared[fastPathKey] != "rl.example.com\x00/x" {
		t.Fatalf("shared %v", k.shared)
	}
	name := registry.ServiceName("rl.example.com", "/")
	e := c.compile().backend.routes.Load().Match("rl.example.com", "/x")
	rs := e.Value(c.compile().buildRoute).(*routeServing)
	sv, err := translator.ForRoute(e.Route, name, translator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cp := rs.cfg.compile()
	if rs.cfg.pluginID != sv.PluginID || rs.cfg.serviceID != sv.ServiceID || cp.rate.scope != sv.PluginID ||
		cp.rate.value != sv.ServiceID || rs.cfg.Service != name || cp.breaker == nil || rs.cfg.CircuitBreaker.FailureThreshold != 3 {
		t.Fatalf("route config %+v rate %+v", rs.cfg, cp.rate)
	}
	// The log phase finds the route again and records through its breaker.
	lk := &fakeKong{shared: k.shared, serialized: `{"tries":[{"ip":"127.0.0.1","port":9443}],"response":{"status":502},"source":"upstream"}`}
	c.log(lk)
	if want := []string{"kong.ctx.shared.get", "kong.log.serialize"}; !reflect.DeepEqual(lk.calls, want) {
		t.Fatalf("log calls %v, want %v", lk.calls, want)
	}
	// Five per minute with burst four: the sixth is refused, 429 with the
	// limiter's headers, as on the dedicated route.
	var last *fakeKong
	for i := 0; i < 6; i++ {
		last = fastAccess(c, "rl.example.com", "/x", nil)
	}
	if last.status != 429 || last.exitHeaders["Retry-After"] == nil {
		t.Fatalf("sixth request: %d %v", last.status, last.exitHeaders)
	}
}

func TestJoinUpstreamPath(t *testing.T) {
	// fastpath-facts (d), measured on Kong 3.4.2 and 3.9.3.
	for _, c := range [][3]string{
		{"/base", "/", "/base"}, {"/base", "/x", "/base/x"}, {"/base", "/x/", "/base/x/"}, {"/base", "/xy", "/base/xy"},
		{"/base/", "/", "/base/"}, {"/base/", "/x", "/base/x"}, {"/base/", "/x/", "/base/x/"},
	} {
		if got := joinUpstreamPath(c[0], c[1]); got != c[2] {
			t.Errorf("join(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestResponseType(t *testing.T) {
	for accept, want := range map[string]string{
		"": mimeJSON, "*/*": mimeJSON, "text/*": mimePlain, "text/html": mimeHTML, "application/xml": mimeXML,
		"image/png": mimeJSON, "text/html;q=0.2, text/plain;q=0.9": mimePlain, "TEXT/HTML": mimeJSON, // Kong looks the type up as sent
		"application/*": mimeJSON, "garbage": mimeJSON, "text/plain;q=0, text/html;q=0": mimeJSON,
	} {
		if got := responseType(accept); got != want {
			t.Errorf("responseType(%q) = %q, want %q", accept, got, want)
		}
	}
	if !strings.HasSuffix(errorPage(mimeHTML, noRouteMessage, ""), "<p>no Route matched with those values.</p>\n  </body>\n</html>\n") {
		t.Error("html page")
	}
}

// fastRoutesMetric scrapes service_registry_fast_path_routes for a Redis.
func fastRoutesMetric(t *testing.T, redis string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{version: "test"})
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "service_registry_fast_path_routes" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == redis {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// hostKong is countingKong for one request host and path.
type hostKong struct {
	countingKong
	host, path string
}

func (h *hostKong) RequestHeader(name string) (string, error) {
	h.other++
	if name == "host" {
		return h.host, nil
	}
	return "", nil
}

func (h *hostKong) RequestPath() (string, error) { h.other++; return h.path, nil }

// BenchmarkFastPathAccess is the plugin's own work for one fast-path
// request among 10 000 registered routes (PDK transport excluded; compare
// BenchmarkAccess, the same work on a dedicated route).
func BenchmarkFastPathAccess(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	rdb := srv.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	store := registry.NewStore(rdb, registry.Options{})
	for i := 0; i < 10000; i++ {
		r := registry.Route{Host: fmt.Sprintf("h%d.example.com", i), Path: "/api", Backend: fmt.Sprintf("http://10.0.%d.%d:80", i/250, i%250+1)}
		if _, _, err := store.RegisterRoute(b.Context(), r); err != nil {
			b.Fatal(err)
		}
	}
	var c Config
	_ = c.UnmarshalJSON([]byte(fmt.Sprintf(`{"registry":"redis","fast_path":true,"redis":{"port":%d,"timeout_ms":5000}}`, srv.Port)))
	k := &hostKong{host: "h4242.example.com:8000", path: "/api/orders/1"}
	c.access(k) // first load of the table and of the route's snapshot
	k.countingKong = countingKong{}
	srv.ResetStats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.access(k)
	}
	b.StopTimer()
	if k.exit != 0 || k.setTarget != b.N {
		b.Fatalf("calls %+v for %d requests", k.countingKong, b.N)
	}
	b.ReportMetric(float64(k.setTarget+k.exit+k.other)/float64(b.N), "pdk-calls/op")
	b.ReportMetric(float64(srv.TotalCalls("config|resetstat", "hello"))/float64(b.N), "redis-cmds/op")
}

// A fast-path route's config shares its catch-all's backend without a
// reference of its own: it is reachable from that backend (route table
// entry), so a reference it held was never released, and after a change of
// the catch-all's Redis settings the old backend was never closed.
func TestFastPathOldBackendClosed(t *testing.T) {
	fx := newFixture(t)
	fx.register(t, "leak.example.com", "/", "http://127.0.0.1:9001", `{"rate_limit":{"enabled":true,"requests_per_min":60}}`)
	backends.mu.Lock()
	oldIdle := backends.idle
	backends.idle = 0
	backends.mu.Unlock()
	defer func() { backends.mu.Lock(); backends.idle = oldIdle; backends.mu.Unlock() }()

	catchAll := func(timeoutMs int) *Config {
		return decode(t, fmt.Sprintf(`{"registry":"redis","fast_path":true,"redis":{"host":"127.0.0.1","port":%d,"timeout_ms":%d}}`,
			fx.srv.Port, timeoutMs))
	}
	var oldRedis RedisConfig
	func() {
		old := catchAll(4321)
		oldRedis = old.Redis
		if k := fastAccess(old, "leak.example.com", "/x", nil); k.port != 9001 {
			t.Fatalf("old catch-all: %d %s, calls %v", k.status, k.body, k.calls)
		}
	}()
	// The settings change: Kong runs the new config, the old one is garbage.
	cur := catchAll(4322)
	if k := fastAccess(cur, "leak.example.com", "/x", nil); k.port != 9001 {
		t.Fatalf("new catch-all: %d %s, calls %v", k.status, k.body, k.calls)
	}
	deadline := time.Now().Add(10 * time.Second)
	for backends.open(oldRedis) {
		if time.Now().After(deadline) {
			t.Fatal("the old catch-all's backend never closed")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if !backends.open(cur.Redis) {
		t.Fatal("the current catch-all's backend closed")
	}
	if k := fastAccess(cur, "leak.example.com", "/x", nil); k.port != 9001 || k.headers["RateLimit-Limit"] == nil {
		t.Fatalf("after the close: %d %s, headers %v", k.status, k.body, k.headers)
	}
}
