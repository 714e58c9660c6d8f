package adminsvc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// catchAll is the fast path's catch-all as Kong holds it (nil maps when
// absent): its route and its service-registry plugin.
func catchAll(k *kongfake.Fake) (route, plugin map[string]any) {
	route, _ = k.Find("routes", translator.FastPathName)
	svc, ok := k.Find("services", translator.FastPathName)
	if !ok {
		return route, nil
	}
	for _, p := range k.List("plugins") {
		if ref, _ := p["service"].(map[string]any); ref != nil && ref["id"] == svc["id"] && p["name"] == "service-registry" {
			plugin = p
		}
	}
	return route, plugin
}

// checkCatchAll: the catch-all is whole (route "/" without hosts, an
// upstream without targets, the plugin in fast_path mode with the same
// redis settings as the dedicated route's plugin), all tagged as ours.
func checkCatchAll(t *testing.T, k *kongfake.Fake, dedicated string) {
	t.Helper()
	rt, plug := catchAll(k)
	if rt == nil || plug == nil {
		t.Fatalf("catch-all missing: route %v plugin %v", rt, plug)
	}
	if rt["hosts"] != nil || len(rt["paths"].([]any)) != 1 || rt["paths"].([]any)[0] != "/" {
		t.Fatalf("catch-all route: %v", rt)
	}
	up, ok := k.Find("upstreams", translator.FastPathName+".upstream")
	if !ok {
		t.Fatal("catch-all upstream missing")
	}
	for _, tg := range k.List("targets") {
		if ref, _ := tg["upstream"].(map[string]any); ref["id"] == up["id"] {
			t.Fatalf("catch-all upstream has a target: %v", tg)
		}
	}
	cfg := plug["config"].(map[string]any)
	if cfg["fast_path"] != true || cfg["registry"] != "redis" {
		t.Fatalf("catch-all plugin: %v", cfg)
	}
	// The plugin serving the dedicated route: on its service, or the
	// global one (plugin scope global).
	svc, _ := k.Find("services", dedicated)
	for _, p := range k.List("plugins") {
		ref, _ := p["service"].(map[string]any)
		if p["name"] == "service-registry" && (ref == nil && p["id"] == translator.GlobalPluginID || ref != nil && ref["id"] == svc["id"]) {
			if a, b := p["config"].(map[string]any)["redis"], cfg["redis"]; !sameMap(a, b) {
				t.Fatalf("redis settings: dedicated %v, catch-all %v", a, b)
			}
		}
	}
	for _, e := range []map[string]any{rt, plug, up} {
		if !hasTags(e["tags"], translator.TagManaged, translator.TagFastPath) {
			t.Fatalf("%v without our tags: %v", e["name"], e["tags"])
		}
	}
}

func sameMap(a, b any) bool {
	ma, _ := a.(map[string]any)
	mb, _ := b.(map[string]any)
	if len(ma) == 0 || len(ma) != len(mb) {
		return false
	}
	for k, v := range ma {
		if mb[k] != v {
			return false
		}
	}
	return true
}

func hasTags(v any, want ...string) bool {
	tags, _ := v.([]any)
	for _, w := range want {
		found := false
		for _, tg := range tags {
			found = found || tg == w
		}
		if !found {
			return false
		}
	}
	return true
}

func healthKong(s *svc) map[string]any {
	k, _ := s.do("GET", "/health", "").Body["kong"].(map[string]any)
	return k
}

// The catch-all comes with the first sync (DB mode), is healed when
// deleted in Kong, and SR_FAST_PATH=off removes it and nothing else.
func TestFastPathCatchAllDBMode(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL()})
	if r := s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080"}`); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	waitAgree(t, s, k, 10*time.Second)
	waitFor(t, 10*time.Second, "the catch-all", func() bool { rt, p := catchAll(k); return rt != nil && p != nil })
	checkCatchAll(t, k, "sr-api.example.com_v1")
	waitFor(t, 5*time.Second, "/health fast_path on", func() bool { return healthKong(s)["fast_path"] == "on" })

	// Deleted in Kong (route and plugin): back within the reconcile interval (1s).
	_, plug := catchAll(k)
	for _, p := range []string{"/routes/" + translator.FastPathName, "/plugins/" + plug["id"].(string)} {
		if code, b := kongCall(t, k, "DELETE", p, nil); code != 204 {
			t.Fatalf("DELETE %s: %d %v", p, code, b)
		}
	}
	start := time.Now()
	waitFor(t, 10*time.Second, "catch-all healed", func() bool { rt, p := catchAll(k); return rt != nil && p != nil })
	t.Logf("catch-all healed in %s (reconcile interval 1s)", time.Since(start).Round(time.Millisecond))
	checkCatchAll(t, k, "sr-api.example.com_v1")

	s.Stop()
	off := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_FAST_PATH": "off"}})
	waitFor(t, 20*time.Second, "catch-all removed", func() bool {
		_, svcLeft := k.Find("services", translator.FastPathName)
		_, upLeft := k.Find("upstreams", translator.FastPathName+".upstream")
		rt, p := catchAll(k)
		return rt == nil && p == nil && !svcLeft && !upLeft
	})
	waitAgree(t, off, k, 5*time.Second)
	if f := healthKong(off)["fast_path"]; f != "off" {
		t.Fatalf("/health fast_path %v, want off", f)
	}
}

// DB-less: the catch-all is in every push beside the operator's base, and
// back after Kong restarted empty.
func TestFastPathCatchAllDBLess(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, true)
	base := filepath.Join(t.TempDir(), "kong.yml")
	if err := os.WriteFile(base, []byte("_format_version: \"3.0\"\nservices:\n- name: operator-svc\n  url: http://op:8080\n  routes:\n  - name: operator-route\n    paths: [/op]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_KONG_BASE_CONFIG": base}})
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080"}`)
	waitAgree(t, s, k, 10*time.Second)
	checkCatchAll(t, k, "sr-api.example.com_v1")
	k.Wipe()
	waitFor(t, 10*time.Second, "catch-all pushed again", func() bool { rt, p := catchAll(k); return rt != nil && p != nil })
	if _, ok := k.Find("routes", "operator-route"); !ok {
		t.Fatal("operator route not restored")
	}
}

// An operator's own route catching "/" without hosts: ours is not created
// (it would tie), /health says so without failing, the log says so once.
func TestFastPathOperatorRootRouteWins(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	if code, b := kongCall(t, k, "POST", "/services", map[string]any{"name": "op-svc", "url": "http://op:8080"}); code != 201 {
		t.Fatalf("%d %v", code, b)
	}
	if code, b := kongCall(t, k, "POST", "/services/op-svc/routes", map[string]any{"name": "op-root", "paths": []string{"/"}}); code != 201 {
		t.Fatalf("%d %v", code, b)
	}
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL()})
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080"}`)
	waitAgree(t, s, k, 10*time.Second)
	s.waitReconciles(3)
	h := s.do("GET", "/health", "")
	kong, _ := h.Body["kong"].(map[string]any)
	if h.Status != 200 || h.Body["status"] != "healthy" || kong["fast_path"] != "shadowed" || kong["fast_path_shadowed_by"] != "op-root" {
		t.Fatalf("/health: %s", h.Raw)
	}
	if rt, p := catchAll(k); rt != nil || p != nil {
		t.Fatalf("catch-all created beside the operator's: %v %v", rt, p)
	}
	if _, ok := k.Find("routes", "op-root"); !ok {
		t.Fatal("operator's route touched")
	}
	if n := strings.Count(s.Logs.String(), "catches / without hosts"); n != 1 {
		t.Fatalf("logged %d times over several reconciles, want once:\n%s", n, tail(s.Logs.String(), 3000))
	}
}
