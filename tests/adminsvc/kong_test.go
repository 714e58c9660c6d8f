package adminsvc_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

func startKong(t *testing.T, dbless bool) *kongfake.Fake {
	t.Helper()
	return kongfake.Start(t, kongfake.Options{DBLess: dbless, Plugins: map[string]kongfake.PluginSchema{
		"service-registry": kongfake.RegistrySchema(t),
	}})
}

func kongCall(t *testing.T, k *kongfake.Fake, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, k.URL()+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// managed are the entities adminsvc writes for registered routes: tagged
// as ours, the fast path's catch-all aside (it belongs to no route).
func managed(list []map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range list {
		tags, _ := e["tags"].([]any)
		ours, catchAll := false, false
		for _, tg := range tags {
			ours = ours || tg == translator.TagManaged
			catchAll = catchAll || tg == translator.TagFastPath
		}
		if ours && !catchAll {
			out = append(out, e)
		}
	}
	return out
}

// agree reports whether Kong holds exactly the registry's routes: one
// managed service, route and upstream per registered route, no duplicates,
// and the service-registry plugins of the plugin scope /health reports.
func agree(s *svc, k *kongfake.Fake) error {
	r := s.do("GET", "/routes", "")
	want := map[string]bool{}
	for _, x := range r.Body["routes"].([]any) {
		m := x.(map[string]any)
		want[registry.ServiceName(m["host"].(string), m["path"].(string))] = true
	}
	for _, kind := range []string{"services", "routes"} {
		got := map[string]int{}
		for _, e := range managed(k.List(kind)) {
			got[e["name"].(string)]++
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s: kong has %d managed, registry %d", kind, len(got), len(want))
		}
		for n, c := range got {
			if !want[n] || c != 1 {
				return fmt.Errorf("%s: %s in kong %d times, in registry %v", kind, n, c, want[n])
			}
		}
	}
	if n := len(managed(k.List("upstreams"))); n != len(want) {
		return fmt.Errorf("upstreams: %d for %d routes", n, len(want))
	}
	return agreePlugins(s, k, len(want))
}

// agreePlugins checks our service-registry plugins against the plugin
// scope /health reports: one per route service (service), or one global
// plugin and none on the route services (global; the default in DB mode).
// A replica that has not applied (not the leader) reports none: then
// either whole shape agrees.
func agreePlugins(s *svc, k *kongfake.Fake, routes int) error {
	kong, _ := s.do("GET", "/health", "").Body["kong"].(map[string]any)
	scope, _ := kong["plugin_scope"].(string)
	global, perService := 0, 0
	for _, p := range managed(k.List("plugins")) {
		switch {
		case p["name"] != translator.PluginRegistry:
		case hasTags(p["tags"], translator.TagGlobal) && p["service"] == nil:
			global++
		default:
			perService++
		}
	}
	globalShape := global == 1 && perService == 0
	serviceShape := global == 0 && perService == routes
	switch {
	case scope == translator.PluginScopeGlobal && !globalShape:
		return fmt.Errorf("plugin scope global: %d global service-registry plugins and %d on route services", global, perService)
	case scope == translator.PluginScopeService && !serviceShape:
		return fmt.Errorf("plugin scope service: service-registry plugins: %d for %d routes, %d global", perService, routes, global)
	case !globalShape && !serviceShape:
		return fmt.Errorf("service-registry plugins: %d global, %d on route services for %d routes", global, perService, routes)
	}
	return nil
}

func waitAgree(t *testing.T, s *svc, k *kongfake.Fake, timeout time.Duration) {
	t.Helper()
	var last error
	deadline := time.Now().Add(timeout)
	for {
		if last = agree(s, k); last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kong and registry disagree after %s: %v\n%s", timeout, last, tail(s.Logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestKongDBModeEndToEnd runs in plugin scope service (the default, said
// explicitly: it checks each route's own service-registry plugin;
// TestKongDBModeGlobalScope: scope global).
func TestKongDBModeEndToEnd(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_PLUGIN_SCOPE": "service"}})

	r := s.do("POST", "/register", `{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000",
	  "options":{"timeout":"45s","headers":{"X-API-Version":"2.0"},"rate_limit":{"enabled":true,"requests_per_min":100,"per_ip":true},
	  "circuit_breaker":{"enabled":true,"failure_threshold":5,"timeout":"30s"},"retry":{"enabled":true,"max_attempts":3},
	  "health_check_path":"/health","health_check_interval":"10s"}}`)
	if r.Status != 200 {
		t.Fatal(r.Raw)
	}
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080"}`)
	waitAgree(t, s, k, 10*time.Second)

	name := "sr-api.example.com_v2"
	svcE, _ := k.Find("services", name)
	if svcE["read_timeout"] != 45000.0 || svcE["connect_timeout"] != 45000.0 || svcE["retries"] != 2.0 || svcE["host"] != name+".upstream" {
		t.Fatalf("service: %v", svcE)
	}
	rt, _ := k.Find("routes", name)
	if rt["hosts"].([]any)[0] != "api.example.com" || rt["paths"].([]any)[0] != "/v2" || rt["service"].(map[string]any)["id"] != svcE["id"] {
		t.Fatalf("route: %v", rt)
	}
	up, _ := k.Find("upstreams", name+".upstream")
	active := up["healthchecks"].(map[string]any)["active"].(map[string]any)
	if active["http_path"] != "/health" || active["healthy"].(map[string]any)["interval"] != 10.0 {
		t.Fatalf("upstream healthchecks: %v", active)
	}
	// Both plugins of the route: agree counts service-registry plugins only,
	// and adminsvc writes a route's plugins concurrently.
	var srPlugin, rtPlugin map[string]any
	testbin.WaitFor(t, 30*time.Second, "both plugins of "+name, func() bool {
		srPlugin, rtPlugin = nil, nil
		for _, p := range k.List("plugins") {
			if ref, _ := p["service"].(map[string]any); ref == nil || ref["id"] != svcE["id"] {
				continue
			}
			switch p["name"] {
			case "service-registry":
				srPlugin = p
			case "response-transformer":
				rtPlugin = p
			}
		}
		return srPlugin != nil && rtPlugin != nil
	})
	cfg := srPlugin["config"].(map[string]any)
	if cfg["registry"] != "redis" || cfg["service"] != name {
		t.Fatalf("service-registry plugin: %v", cfg)
	}
	redisCfg, _ := cfg["redis"].(map[string]any)
	if redisCfg == nil {
		t.Fatalf("plugin config without redis: %v", cfg)
	}
	if redisCfg["host"] != "127.0.0.1" || redisCfg["port"] != float64(rs.Port) {
		t.Fatalf("plugin redis settings: %v", redisCfg)
	}
	if rl := cfg["rate_limit"].(map[string]any); rl["enabled"] != true || rl["requests_per_min"] != 100.0 || rl["per_ip"] != true || rl["burst"] != 99.0 {
		t.Fatalf("plugin rate_limit: %v", rl)
	}
	if cb := cfg["circuit_breaker"].(map[string]any); cb["failure_threshold"] != 5.0 || cb["timeout_ms"] != 30000.0 {
		t.Fatalf("plugin circuit_breaker: %v", cb)
	}
	if add := rtPlugin["config"].(map[string]any)["add"].(map[string]any)["headers"].([]any); len(add) != 1 || add[0] != "X-API-Version:2.0" {
		t.Fatalf("response-transformer: %v", rtPlugin)
	}

	// Drift: delete a managed route, edit a managed plugin, add unmanaged
	// entities; healed within one reconcile interval (1s), unmanaged kept.
	if st, b := kongCall(t, k, "DELETE", "/routes/sr-api.example.com_v1", nil); st != 204 {
		t.Fatalf("%d %v", st, b)
	}
	if st, b := kongCall(t, k, "PATCH", "/plugins/"+srPlugin["id"].(string), map[string]any{"config": map[string]any{"registry": "kong"}}); st != 200 {
		t.Fatalf("%d %v", st, b)
	}
	if st, b := kongCall(t, k, "POST", "/services", map[string]any{"name": "team-a-svc", "url": "http://team-a:8080", "tags": []string{"team-a"}}); st != 201 {
		t.Fatalf("%d %v", st, b)
	}
	if st, b := kongCall(t, k, "POST", "/services/team-a-svc/routes", map[string]any{"name": "team-a-route", "paths": []string{"/team-a"}}); st != 201 {
		t.Fatalf("%d %v", st, b)
	}
	healStart := time.Now()
	waitFor(t, 5*time.Second, "drift healed", func() bool {
		_, routeBack := k.Find("routes", "sr-api.example.com_v1")
		p, _ := k.Find("plugins", srPlugin["id"].(string))
		return routeBack && p["config"].(map[string]any)["registry"] == "redis"
	})
	t.Logf("drift healed in %s (reconcile interval 1s)", time.Since(healStart).Round(time.Millisecond))
	if _, ok := k.Find("services", "team-a-svc"); !ok {
		t.Fatal("unmanaged service removed")
	}
	if _, ok := k.Find("routes", "team-a-route"); !ok {
		t.Fatal("unmanaged route removed")
	}

	// Deregister → gone.
	s.do("POST", "/deregister", `{"host":"api.example.com","path":"/v2"}`)
	waitAgree(t, s, k, 10*time.Second)
	if _, ok := k.Find("services", name); ok {
		t.Fatal("deregistered service still in kong")
	}
	for _, p := range k.List("plugins") {
		if ref, _ := p["service"].(map[string]any); ref != nil && ref["id"] == svcE["id"] {
			t.Fatalf("plugin of deregistered service left: %v", p["name"])
		}
	}

	// Kong down for a while: registrations and deregistrations still
	// succeed, /health shows them pending, Kong catches up after.
	k.Stop()
	for i := 0; i < 5; i++ {
		if r := s.do("POST", "/register", fmt.Sprintf(`{"host":"down.example.com","path":"/p%d","backend":"http://d:%d"}`, i, 8000+i)); r.Status != 200 {
			t.Fatalf("register while kong down: %d %s", r.Status, r.Raw)
		}
	}
	s.do("POST", "/deregister", `{"host":"down.example.com","path":"/p0"}`)
	if h := s.do("GET", "/health", ""); h.Status != 200 || h.Body["pending_changes"].(float64) == 0 {
		t.Fatalf("health while kong down: %s", h.Raw)
	}
	s.waitFailedReconcile()
	if err := k.Restart(); err != nil {
		t.Fatal(err)
	}
	waitAgree(t, s, k, 15*time.Second)
	waitFor(t, 10*time.Second, "pending back to 0", func() bool {
		return s.do("GET", "/health", "").Body["pending_changes"] == 0.0
	})
	if _, ok := k.Find("services", "team-a-svc"); !ok {
		t.Fatal("unmanaged service removed after the outage")
	}
}

func TestKongDBLessEndToEnd(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, true)
	base := filepath.Join(t.TempDir(), "kong.yml")
	os.WriteFile(base, []byte(`_format_version: "3.0"
services:
- name: operator-svc
  url: http://operator.internal:8080
  routes:
  - name: operator-route
    paths: [/op]
`), 0o644)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_KONG_BASE_CONFIG": base}})
	for i := 0; i < 3; i++ {
		s.do("POST", "/register", fmt.Sprintf(`{"host":"l%d.example.com","path":"/","backend":"http://l:%d","options":{"headers":{"X-N":"%d"}}}`, i, 9000+i, i))
	}
	waitAgree(t, s, k, 10*time.Second)
	if _, ok := k.Find("services", "operator-svc"); !ok {
		t.Fatal("operator's base config lost")
	}
	pushes := k.ConfigPushes()
	s.waitReconciles(2) // two full reconciles (1s interval) without changes
	if k.ConfigPushes() != pushes {
		t.Fatalf("pushed %d times without changes", k.ConfigPushes()-pushes)
	}
	// Kong restarted empty → refilled within an interval.
	k.Wipe()
	waitAgree(t, s, k, 5*time.Second)
	if _, ok := k.Find("routes", "operator-route"); !ok {
		t.Fatal("operator route not restored")
	}
	s.do("POST", "/deregister", `{"host":"l0.example.com","path":"/"}`)
	waitAgree(t, s, k, 5*time.Second)

	// Kong down, registrations go on, Kong comes back empty (a DB-less Kong
	// restarts without config): the next reconcile pushes everything.
	k.Stop()
	for i := 10; i < 13; i++ {
		if r := s.do("POST", "/register", fmt.Sprintf(`{"host":"l%d.example.com","path":"/","backend":"http://l:%d"}`, i, 9000+i)); r.Status != 200 {
			t.Fatalf("register with kong down: %d %s", r.Status, r.Raw)
		}
	}
	s.waitFailedReconcile()
	k.Wipe()
	if err := k.Restart(); err != nil {
		t.Fatal(err)
	}
	waitAgree(t, s, k, 10*time.Second)
	if _, ok := k.Find("services", "operator-svc"); !ok {
		t.Fatal("operator's base config not restored after the outage")
	}
}

// TestDeckAgainstFake: decK (apt package deck) sees the registry's entities
// by tag and its sync of another select tag leaves them alone.
func TestDeckAgainstFake(t *testing.T) {
	if _, err := exec.LookPath("deck"); err != nil {
		t.Skip("deck not installed (apt-get install deck)")
	}
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL()})
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000","options":{"headers":{"X-A":"1"}}}`)
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:9000"}`)
	waitAgree(t, s, k, 10*time.Second)

	deck := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("deck", append(args, "--kong-addr", k.URL(), "--no-color")...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("deck %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := deck("ping"); !strings.Contains(out, "Successfully connected") {
		t.Fatalf("deck ping: %s", out)
	}
	waitFor(t, 10*time.Second, "the fast path's catch-all", func() bool { rt, p := catchAll(k); return rt != nil && p != nil })
	dump := deck("dump", "--select-tag", translator.TagManaged, "-o", "-")
	for _, want := range []string{"name: sr-api.example.com_v2", "name: sr-api.example.com_v1", "sr-api.example.com_v2.upstream", "service-registry", "response-transformer", "target: api-v2:9000",
		"name: " + translator.FastPathName, translator.FastPathName + ".upstream", "fast_path: true"} {
		if !strings.Contains(dump, want) {
			t.Fatalf("deck dump lacks %q:\n%s", want, dump)
		}
	}
	before := k.List("services")
	file := filepath.Join(t.TempDir(), "team-a.yaml")
	os.WriteFile(file, []byte(`_format_version: "1.1"
_info:
  select_tags:
  - team-a
services:
- name: team-a-svc
  url: http://team-a:8080
  routes:
  - name: team-a-route
    paths:
    - /team-a
`), 0o644)
	out := deck("sync", "-s", file)
	if !strings.Contains(out, "Created: 2") {
		t.Fatalf("deck sync: %s", out)
	}
	if _, ok := k.Find("services", "team-a-svc"); !ok {
		t.Fatal("deck sync did not create its service")
	}
	if err := agree(s, k); err != nil {
		t.Fatalf("after deck sync: %v", err)
	}
	if len(k.List("services")) != len(before)+1 {
		t.Fatalf("services before %d after %d", len(before), len(k.List("services")))
	}
	// A second sync never deletes ours. (decK 1.4 predates Kong 3 and
	// reports its own entities as "updating" for fields it does not know,
	// so only deletions are checked.)
	if out := deck("sync", "-s", file); strings.Contains(out, "deleting") || strings.Contains(out, "sr-api") {
		t.Fatalf("second deck sync touched registry entities: %s", out)
	}
	if err := agree(s, k); err != nil {
		t.Fatalf("after second deck sync: %v", err)
	}
	// decK with select tags never touched the catch-all either.
	checkCatchAll(t, k, "sr-api.example.com_v1")
	// Without select tags decK would delete it, with everything else of
	// ours (README "decK and select tags"): shown by a dry run.
	plain := filepath.Join(t.TempDir(), "plain.yaml")
	os.WriteFile(plain, []byte("_format_version: \"1.1\"\nservices:\n- name: team-b-svc\n  url: http://team-b:8080\n"), 0o644)
	if out := deck("diff", "-s", plain); !strings.Contains(out, "deleting service "+translator.FastPathName) ||
		!strings.Contains(out, "deleting route "+translator.FastPathName) {
		t.Fatalf("deck diff without select tags does not show the catch-all deleted:\n%s", out)
	}
	checkCatchAll(t, k, "sr-api.example.com_v1")
	s.waitReconciles(2)
	if _, ok := k.Find("services", "team-a-svc"); !ok {
		t.Fatal("reconcile removed decK's service")
	}
}
