package main

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// serviceAccess runs the global instance's access phase for a request Kong
// routed to the Kong service (id, name).
func serviceAccess(c *Config, id, name, host string) *fakeKong {
	k := &fakeKong{svcID: id, svcName: name, reqHeaders: map[string]string{"host": host}}
	c.access(k)
	return k
}

// dedicatedConfig is the config the sync writes on the route's own service
// in plugin scope service, with the ids Kong sends along.
func dedicatedConfig(t *testing.T, fx *fixture, host, path string) *Config {
	t.Helper()
	ctx := t.Context()
	r, err := fx.store.GetRoute(ctx, host, path)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := translator.ForRoute(r, registry.ServiceName(host, path), translator.Options{Redis: map[string]any{"host": "127.0.0.1", "port": fx.srv.Port, "timeout_ms": 5000}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := maps.Clone(sv.Config)
	cfg["__plugin_id"], cfg["service_id"] = sv.PluginID, sv.ServiceID
	js, _ := json.Marshal(cfg)
	return decode(t, string(js))
}

// TestRegistryRoutesServesAsServiceInstance: on a registered route's Kong
// service, the global instance makes exactly the calls and answers of the
// route's own per-service instance, after one kong.router.get_service;
// both count in the same rate-limit key.
func TestRegistryRoutesServesAsServiceInstance(t *testing.T) {
	fx := newFixture(t)
	fx.register(t, "rr.example.com", "/api", "http://127.0.0.1:9101", `{"rate_limit":{"enabled":true,"requests_per_min":4}}`)
	name := registry.ServiceName("rr.example.com", "/api")
	id := translator.ID("service", name)
	global := fx.config(t, `,"registry_routes":true`)
	own := dedicatedConfig(t, fx, "rr.example.com", "/api")

	g := serviceAccess(global, id, name, "rr.example.com")
	d := serviceAccess(own, id, name, "rr.example.com")
	if g.calls[0] != "kong.router.get_service" || !reflect.DeepEqual(g.calls[1:], d.calls) {
		t.Fatalf("global calls %v, per-service calls %v", g.calls, d.calls)
	}
	if g.port != 9101 || g.port != d.port || g.upstreamHost != d.upstreamHost || g.upstreamHost != "rr.example.com" {
		t.Fatalf("global %s:%d host %q, per-service %s:%d host %q", g.host, g.port, g.upstreamHost, d.host, d.port, d.upstreamHost)
	}
	// 4 per minute, burst 3: two requests spent, two left in the one key
	// both instances share; the fifth is refused whichever serves it.
	if got := d.headers["RateLimit-Remaining"]; !reflect.DeepEqual(got, []string{"2"}) || !reflect.DeepEqual(g.headers["RateLimit-Remaining"], []string{"3"}) {
		t.Fatalf("RateLimit-Remaining: global %v then per-service %v, want 3 then 2 (one key)", g.headers["RateLimit-Remaining"], got)
	}
	serviceAccess(global, id, name, "rr.example.com")
	serviceAccess(own, id, name, "rr.example.com")
	if k := serviceAccess(global, id, name, "rr.example.com"); k.status != 429 {
		t.Fatalf("fifth request: %d %q, want 429", k.status, k.body)
	}
}

// TestRegistryRoutesPassesOthers: an operator's Kong service (other id,
// even under a registry service's name) passes untouched after the one
// router call; so does a request without a Kong service.
func TestRegistryRoutesPassesOthers(t *testing.T) {
	fx := newFixture(t)
	fx.register(t, "rr.example.com", "/", "http://127.0.0.1:9102", "")
	name := registry.ServiceName("rr.example.com", "/")
	global := fx.config(t, `,"registry_routes":true`)
	for _, tc := range []struct{ id, name string }{
		{"5b1d2c70-0000-4000-8000-000000000001", "orders"},
		{"5b1d2c70-0000-4000-8000-000000000002", name},
		{"", ""},
	} {
		k := serviceAccess(global, tc.id, tc.name, "rr.example.com")
		if !reflect.DeepEqual(k.calls, []string{"kong.router.get_service"}) || k.status != 0 || k.host != "" {
			t.Errorf("service %q %q: calls %v status %d target %q", tc.id, tc.name, k.calls, k.status, k.host)
		}
	}
}

// TestRegistryRoutesDeregistered: Kong still routes to the service of a
// route that left the registry (until the sync deletes it): Kong's own
// 404, as once the route is gone, and never the backend.
func TestRegistryRoutesDeregistered(t *testing.T) {
	fx := newFixture(t)
	fx.register(t, "gone.example.com", "/", "http://127.0.0.1:9103", "")
	name := registry.ServiceName("gone.example.com", "/")
	id := translator.ID("service", name)
	global := fx.config(t, `,"registry_routes":true`)
	if k := serviceAccess(global, id, name, "gone.example.com"); k.port != 9103 {
		t.Fatalf("registered: %d %q calls %v", k.status, k.body, k.calls)
	}
	if _, err := fx.store.DeregisterRoute(t.Context(), "gone.example.com", "/"); err != nil {
		t.Fatal(err)
	}
	// Served until the change feeds bring the deregistration (as on the
	// fast path: milliseconds; the instances' feed may come first: 503),
	// then Kong's 404; never the backend again once it stopped.
	var k *fakeKong
	stopped := false
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		k = serviceAccess(global, id, name, "gone.example.com")
		if stopped && k.host != "" {
			t.Fatalf("served again after the route stopped being served: calls %v", k.calls)
		}
		stopped = stopped || k.status != 0
		if k.status == 404 || time.Now().After(deadline) {
			break
		}
	}
	if k.status != 404 || k.host != "" || k.body != "{\n  \"message\":\"no Route matched with those values\"\n}" {
		t.Fatalf("deregistered: %d %q target %q", k.status, k.body, k.host)
	}
}

// TestRegistryRoutesBreaker: the log phase finds the served route by the
// service kong.log.serialize names and records through its breaker: after
// failure_threshold failed tries the instance is open on the next request.
// No breaker anywhere yet: the log phase makes no call.
func TestRegistryRoutesBreaker(t *testing.T) {
	was := fastBreakers.Swap(false)
	t.Cleanup(func() { fastBreakers.Store(was || fastBreakers.Load()) })
	fx := newFixture(t)
	fx.register(t, "plain.example.com", "/", "http://127.0.0.1:9104", "")
	fx.register(t, "cb.example.com", "/", "http://127.0.0.1:9105", `{"circuit_breaker":{"enabled":true,"failure_threshold":2,"timeout":"30s"}}`)
	global := fx.config(t, `,"registry_routes":true`)

	plain := registry.ServiceName("plain.example.com", "/")
	serviceAccess(global, translator.ID("service", plain), plain, "plain.example.com")
	lk := &fakeKong{}
	global.log(lk)
	if len(lk.calls) != 0 {
		t.Fatalf("log calls %v without any breaker", lk.calls)
	}

	name := registry.ServiceName("cb.example.com", "/")
	id := translator.ID("service", name)
	doc, _ := json.Marshal(map[string]any{
		"tries":    []map[string]any{{"ip": "127.0.0.1", "port": 9105}},
		"response": map[string]any{"status": 502}, "source": "upstream",
		"service": map[string]any{"id": id, "name": name},
	})
	for i := 0; i < 2; i++ {
		if k := serviceAccess(global, id, name, "cb.example.com"); k.port != 9105 {
			t.Fatalf("request %d: %d %q", i, k.status, k.body)
		}
		lk := &fakeKong{serialized: string(doc)}
		global.log(lk)
		if !reflect.DeepEqual(lk.calls, []string{"kong.log.serialize"}) {
			t.Fatalf("log calls %v", lk.calls)
		}
	}
	k := serviceAccess(global, id, name, "cb.example.com")
	if k.status != 503 || k.host != "" || !slices.Contains(slices.Collect(maps.Keys(k.exitHeaders)), "Retry-After") {
		t.Fatalf("after 2 failures: %d %q headers %v target %q", k.status, k.body, k.exitHeaders, k.host)
	}
}

func TestRegistryRoutesConfig(t *testing.T) {
	for js, want := range map[string]string{
		`{"registry":"kong","registry_routes":true}`:                   "registry_routes: requires registry redis",
		`{"registry":"redis","registry_routes":true,"fast_path":true}`: "registry_routes: not with fast_path",
	} {
		cp := decode(t, js).compile()
		if cp.err == nil || !strings.Contains(cp.err.Error(), want) {
			t.Errorf("%s: %v, want %q", js, cp.err, want)
		}
	}
}
