package kongsync_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// scopeEnv is an env whose reconciler translates in a plugin scope (with
// the fast path on and the plugin's redis settings as adminsvc writes
// them), its syncer reaching the fake through a proxy that records the
// order of the writes.
type scopeEnv struct {
	*env
	opts translator.Options
	base string
	log  *testbin.Buffer
	url  string

	mu     sync.Mutex
	writes []string // "METHOD /path" of every non-GET call, in order
	hook   func()   // run once before the next write reaches Kong
}

// beforeWrite runs f once, just before the next write reaches Kong (after
// the listings of a full reconcile).
func (e *scopeEnv) beforeWrite(f func()) {
	e.mu.Lock()
	e.hook = f
	e.mu.Unlock()
}

func newScopeEnv(t *testing.T, dbless bool, base string, schema kongfake.PluginSchema) *scopeEnv {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	if schema == nil {
		schema = kongfake.RegistrySchema(t)
	}
	fake := kongfake.Start(t, kongfake.Options{DBLess: dbless, Plugins: map[string]kongfake.PluginSchema{"service-registry": schema}})
	e := &scopeEnv{env: &env{t: t, redis: rs, store: registry.NewStore(rs.Client(), registry.Options{}), kong: fake},
		base: base, log: &testbin.Buffer{},
		opts: translator.Options{FastPath: true, Redis: map[string]any{"host": "127.0.0.1", "port": rs.Port}}}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			e.mu.Lock()
			e.writes = append(e.writes, r.Method+" "+r.URL.Path)
			hook := e.hook
			e.hook = nil
			e.mu.Unlock()
			if hook != nil {
				hook()
			}
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	e.url = proxy.URL
	return e
}

// setScope starts a syncer and reconciler in plugin scope scope, as an
// adminsvc restarted with SR_PLUGIN_SCOPE=scope would (same Kong, same
// registry).
func (e *scopeEnv) setScope(scope string) {
	e.t.Helper()
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: e.url, BaseConfig: []byte(e.base), Attempts: 2,
		Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(e.log, nil))})
	if err != nil {
		e.t.Fatal(err)
	}
	e.opts.PluginScope = scope
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: e.store, Syncer: s, Redis: e.redis.Client(),
		Interval: time.Hour, Translate: e.opts})
	if err != nil {
		e.t.Fatal(err)
	}
	e.sync, e.rec = s, rec
}

// recorded returns the writes since the last call.
func (e *scopeEnv) recorded() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.writes
	e.writes = nil
	return out
}

// registryPlugins are Kong's service-registry plugins: the global ones,
// and the names of the services holding one (the catch-all's included).
func (e *scopeEnv) registryPlugins() (global []map[string]any, services []string) {
	names := map[any]string{}
	for _, s := range e.kong.List("services") {
		names[s["id"]] = s["name"].(string)
	}
	for _, p := range e.kong.List("plugins") {
		if p["name"] != translator.PluginRegistry {
			continue
		}
		ref, _ := p["service"].(map[string]any)
		if ref == nil && p["route"] == nil && p["consumer"] == nil {
			global = append(global, p)
			continue
		}
		services = append(services, names[ref["id"]])
	}
	return global, services
}

// checkGlobal fails unless the registered routes' services are served by
// our one global plugin: none of theirs holds a service-registry plugin,
// the catch-all keeps its own, and the route with headers keeps its
// response-transformer.
func (e *scopeEnv) checkGlobal(headersService string) {
	e.t.Helper()
	global, services := e.registryPlugins()
	if len(global) != 1 || len(services) != 1 || services[0] != translator.FastPathName {
		e.t.Fatalf("service-registry plugins: global %v, on services %v", global, services)
	}
	g := global[0]
	cfg := g["config"].(map[string]any)
	redis, _ := cfg["redis"].(map[string]any)
	if g["id"] != translator.GlobalPluginID || !hasAll(g["tags"], translator.TagManaged, translator.TagGlobal) || g["enabled"] != true ||
		cfg["registry"] != "redis" || cfg["registry_routes"] != true || cfg["fast_path"] != false || cfg["service"] != nil ||
		redis["host"] != "127.0.0.1" || redis["port"] != float64(e.redis.Port) {
		e.t.Fatalf("global plugin: %v", g)
	}
	e.checkTransformer(headersService)
}

// checkService fails unless each route service in names holds its own
// service-registry plugin and there is no global one of ours.
func (e *scopeEnv) checkService(headersService string, names ...string) {
	e.t.Helper()
	global, services := e.registryPlugins()
	for _, g := range global {
		if hasAll(g["tags"], translator.TagManaged) {
			e.t.Fatalf("our global plugin in service scope: %v", g)
		}
	}
	want := append([]string{translator.FastPathName}, names...)
	if !sameStrings(services, want) {
		e.t.Fatalf("services with a service-registry plugin: %v, want %v", services, want)
	}
	e.checkTransformer(headersService)
}

func (e *scopeEnv) checkTransformer(service string) {
	e.t.Helper()
	svc, _ := e.kong.Find("services", service)
	n := 0
	for _, p := range e.kong.List("plugins") {
		if p["name"] == translator.PluginResponseTransformer {
			n++
			if ref, _ := p["service"].(map[string]any); ref == nil || ref["id"] != svc["id"] {
				e.t.Fatalf("response-transformer not on %s: %v", service, p)
			}
		}
	}
	if n != 1 {
		e.t.Fatalf("%d response-transformer plugins, want 1 on %s", n, service)
	}
}

func sameStrings(a, b []string) bool {
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, c := range count {
		if c != 0 {
			return false
		}
	}
	return true
}

// index is the position of the first write with prefix in writes (-1).
func index(writes []string, prefix string) int {
	for i, w := range writes {
		if strings.HasPrefix(w, prefix) {
			return i
		}
	}
	return -1
}

const (
	v1 = "sr-api.example.com_v1"
	v2 = "sr-api.example.com_v2"
)

func (e *scopeEnv) registerTwo() {
	e.t.Helper()
	e.register("api.example.com", "/v2", "http://api-v2:9000", `{"headers":{"X-API-Version":"2.0"},"rate_limit":{"enabled":true,"requests_per_min":100}}`)
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")
}

// DB mode, plugin scope global: one global service-registry plugin
// instead of one per route service, healed like the rest when deleted or
// edited in Kong; a new route costs no plugin write.
func TestDBModeGlobalScope(t *testing.T) {
	e := newScopeEnv(t, false, "", nil)
	e.setScope(translator.PluginScopeGlobal)
	e.registerTwo()
	if res := e.reconcile(); len(res.Refused) > 0 {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkGlobal(v2)
	if _, ok := e.kong.Find("routes", translator.FastPathName); !ok {
		t.Fatal("catch-all route missing")
	}
	if st := e.sync.Status(); st.PluginScope != translator.PluginScopeGlobal || !st.Healthy() {
		t.Fatalf("status: %+v", st)
	}
	e.recorded()
	if res := e.reconcile(); res.Changes() != 0 || len(e.recorded()) != 0 {
		t.Fatalf("no-drift reconcile wrote: %+v", res)
	}

	// A registration writes its service, route, upstream and target, no plugin.
	e.register("new.example.com", "/", "http://new:80", "")
	if _, err := e.rec.ApplyChangesOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := e.recorded(); len(w) != 4 || index(w, "PUT /plugins/") >= 0 {
		t.Fatalf("writes for a new route: %v", w)
	}
	e.checkGlobal(v2)

	// Drift: the global plugin deleted in Kong, then its config edited.
	if code, b := e.kongCall("DELETE", "/plugins/"+translator.GlobalPluginID, nil); code != 204 {
		t.Fatalf("%d %v", code, b)
	}
	if res := e.reconcile(); res.Created != 1 || res.Changes() != 1 {
		t.Fatalf("heal deleted global plugin: %+v", res)
	}
	e.checkGlobal(v2)
	if code, b := e.kongCall("PATCH", "/plugins/"+translator.GlobalPluginID, map[string]any{"config": map[string]any{"registry_routes": false}}); code != 200 {
		t.Fatalf("%d %v", code, b)
	}
	if res := e.reconcile(); res.Updated != 1 || res.Changes() != 1 {
		t.Fatalf("heal edited global plugin: %+v", res)
	}
	e.checkGlobal(v2)
}

// Switching scope converges both ways: the other scope's plugins are ours
// and no longer wanted, so they go; the plugins that take their place are
// written first. Scope auto is global in DB mode.
func TestDBModePluginScopeSwitchConverges(t *testing.T) {
	e := newScopeEnv(t, false, "", nil)
	e.setScope(translator.PluginScopeService)
	e.registerTwo()
	e.reconcile()
	e.checkService(v2, v1, v2)
	if st := e.sync.Status(); st.PluginScope != translator.PluginScopeService {
		t.Fatalf("status: %+v", st)
	}
	e.recorded()

	e.setScope(translator.PluginScopeGlobal)
	if res := e.reconcile(); res.Created != 1 || res.Deleted != 2 || res.Updated != 0 {
		t.Fatalf("service → global: %+v", res)
	}
	e.checkGlobal(v2)
	w := e.recorded()
	if put, del := index(w, "PUT /plugins/"+translator.GlobalPluginID), index(w, "DELETE /plugins/"); put < 0 || del < put {
		t.Fatalf("service → global: the global plugin is not written before the plugins it replaces go: %v", w)
	}

	e.setScope(translator.PluginScopeService)
	if res := e.reconcile(); res.Created != 2 || res.Deleted != 1 || res.Updated != 0 {
		t.Fatalf("global → service: %+v", res)
	}
	e.checkService(v2, v1, v2)
	w = e.recorded()
	if del := index(w, "DELETE /plugins/"+translator.GlobalPluginID); del != len(w)-1 || index(w, "PUT /plugins/") > del {
		t.Fatalf("global → service: the global plugin is not deleted after the plugins that replace it: %v", w)
	}

	e.setScope(translator.PluginScopeAuto)
	e.reconcile()
	e.checkGlobal(v2)
	if st := e.sync.Status(); st.PluginScope != translator.PluginScopeGlobal || st.Mode != kongsync.ModeDB {
		t.Fatalf("auto in DB mode: %+v", st)
	}
}

// An operator's own global service-registry plugin (not tagged as ours):
// Kong keeps one global instance per plugin, so the sync falls back to
// scope service while it is there, and puts ours back once it is gone.
func TestDBModeOperatorGlobalPluginFallsBackToServiceScope(t *testing.T) {
	e := newScopeEnv(t, false, "", nil)
	code, theirs := e.kongCall("POST", "/plugins", map[string]any{"name": "service-registry", "instance_name": "operator-sr",
		"config": map[string]any{"registry": "redis"}})
	if code != 201 {
		t.Fatalf("operator's global plugin: %d %v", code, theirs)
	}
	// Scope global with the operator's global plugin in Kong: no attempt
	// at ours (Kong holds one global instance per plugin: it would refuse
	// it), the route services carry their own plugins as in scope service,
	// so the routes keep their options; the operator's serves the rest.
	e.setScope(translator.PluginScopeGlobal)
	e.registerTwo()
	for range 2 {
		if res := e.reconcile(); len(res.Refused) != 0 {
			t.Fatalf("refused: %+v", res.Refused)
		}
	}
	e.register("new.example.com", "/", "http://new:80", "")
	if res := e.reconcile(); len(res.Refused) != 0 {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkService(v2, v1, v2, "sr-new.example.com_")
	if p, ok := e.kong.Find("plugins", theirs["id"].(string)); !ok || p["config"].(map[string]any)["registry_routes"] != false {
		t.Fatalf("operator's plugin: %v", p)
	}
	e.checkFellBack(true)

	// The operator's goes: ours takes over at the next full reconcile, and
	// the route services' plugins go (after ours is written).
	if code, b := e.kongCall("DELETE", "/plugins/"+theirs["id"].(string), nil); code != 204 {
		t.Fatalf("%d %v", code, b)
	}
	if res := e.reconcile(); len(res.Refused) != 0 {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkGlobal(v2)
	if st := e.sync.Status(); !st.Healthy() || st.PluginScope != translator.PluginScopeGlobal || st.GlobalPluginShadowedBy != "" {
		t.Fatalf("status: %+v", st)
	}
}

// TestDBModeOperatorGlobalPluginAppearsMeanwhile: the operator's global
// plugin comes between a listing and our write: Kong refuses ours (409),
// the route services keep their plugins, and the next (full) reconcile
// falls back to scope service without a refusal.
func TestDBModeOperatorGlobalPluginAppearsMeanwhile(t *testing.T) {
	e := newScopeEnv(t, false, "", nil)
	e.setScope(translator.PluginScopeService)
	e.registerTwo()
	e.reconcile()
	e.checkService(v2, v1, v2)

	// A full reconcile of scope global lists Kong first; the operator's
	// plugin is created right after that listing (through the proxy hook
	// newScopeEnv records writes with).
	e.setScope(translator.PluginScopeGlobal)
	var theirs map[string]any
	e.beforeWrite(func() {
		var code int
		code, theirs = e.kongCall("POST", "/plugins", map[string]any{"name": "service-registry", "instance_name": "operator-sr",
			"config": map[string]any{"registry": "redis"}})
		if code != 201 {
			t.Errorf("operator's global plugin: %d %v", code, theirs)
		}
	})
	res, err := e.rec.ReconcileOnce(context.Background())
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if len(res.Refused) != 1 || res.Refused[0].Kind != "plugins" || res.Refused[0].Route != translator.TagGlobal ||
		!strings.Contains(res.Refused[0].Message, "UNIQUE violation") {
		t.Fatalf("refused: %+v", res.Refused)
	}
	if _, services := e.registryPlugins(); !sameStrings(services, []string{translator.FastPathName, v1, v2}) {
		t.Fatalf("the route services lost their plugins: %v", services)
	}
	if res := e.reconcile(); len(res.Refused) != 0 {
		t.Fatalf("refused again: %+v", res.Refused)
	}
	e.checkService(v2, v1, v2)
	e.checkFellBack(false)
}

// checkFellBack checks Status says plugin scope service, healthy, because
// of the operator's global plugin "operator-sr", and (logged) that the log
// said so exactly once.
func (e *scopeEnv) checkFellBack(logged bool) {
	e.t.Helper()
	st := e.sync.Status()
	if !st.Healthy() || st.PluginScope != translator.PluginScopeService || st.GlobalPluginShadowedBy != "operator-sr" {
		e.t.Fatalf("status: %+v", st)
	}
	if !logged {
		return
	}
	if n := strings.Count(e.log.String(), "an operator's own global service-registry plugin"); n != 1 {
		e.t.Fatalf("logged %d times, want once:\n%s", n, e.log.String())
	}
}

// noRegistryRoutes is a plugin from before registry_routes.
func noRegistryRoutes(t *testing.T) olderPlugin {
	return olderPlugin{kongfake.RegistrySchema(t), "registry_routes"}
}

// A Kong whose plugin predates registry_routes refuses the global plugin
// (400): reported, and the route services keep their plugins, so the
// routes are not left without one.
func TestDBModeRefusedGlobalPluginKeepsServicePlugins(t *testing.T) {
	e := newScopeEnv(t, false, "", noRegistryRoutes(t))
	e.setScope(translator.PluginScopeService)
	e.registerTwo()
	e.reconcile()
	e.setScope(translator.PluginScopeGlobal)
	res := e.reconcile()
	if len(res.Refused) != 1 || res.Refused[0].Route != translator.TagGlobal || !strings.Contains(res.Refused[0].Message, "registry_routes") {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkService(v2, v1, v2)
	if w := e.recorded(); index(w, "DELETE /plugins/") >= 0 {
		t.Fatalf("plugins deleted although the global one was refused: %v", w)
	}
	// A route registered while Kong refuses the global plugin gets its
	// own instead (before: none at all).
	e.register("new.example.com", "/", "http://new:80", "")
	if res := e.reconcile(); len(res.Refused) != 1 {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkService(v2, v1, v2, "sr-new.example.com_")
}

// TestDBModeFreshGlobalRefusedFallsBack: scope global from the start, and
// Kong refuses the global plugin (an older plugin without registry_routes):
// every route service carries its own plugin.
func TestDBModeFreshGlobalRefusedFallsBack(t *testing.T) {
	e := newScopeEnv(t, false, "", noRegistryRoutes(t))
	e.setScope(translator.PluginScopeGlobal)
	e.registerTwo()
	if res := e.reconcile(); len(res.Refused) != 1 || res.Refused[0].Route != translator.TagGlobal {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkService(v2, v1, v2)
}

// TestDBModeSwitchToServiceKeepsGlobalWhileServicePluginsFail: back to
// scope service, Kong refuses a route service's plugin: the global plugin
// stays (it still serves that route) until every route has its own.
func TestDBModeSwitchToServiceKeepsGlobalWhileServicePluginsFail(t *testing.T) {
	refuse := &refuseService{PluginSchema: kongfake.RegistrySchema(t)}
	e := newScopeEnv(t, false, "", refuse)
	e.setScope(translator.PluginScopeGlobal)
	e.registerTwo()
	e.reconcile()
	e.checkGlobal(v2)
	refuse.on.Store(true)
	e.setScope(translator.PluginScopeService)
	if res := e.reconcile(); len(res.Refused) == 0 {
		t.Fatalf("nothing refused: %+v", res)
	}
	if _, ok := e.kong.Find("plugins", translator.GlobalPluginID); !ok {
		t.Fatal("global plugin deleted although a route service's plugin was refused")
	}
	refuse.on.Store(false)
	if res := e.reconcile(); len(res.Refused) != 0 {
		t.Fatalf("refused: %+v", res.Refused)
	}
	e.checkService(v2, v1, v2)
}

// refuseService refuses, while on, a service-registry config naming a
// service (the route services' plugins; not the global one).
type refuseService struct {
	kongfake.PluginSchema
	on atomic.Bool
}

func (s *refuseService) Validate(c map[string]any) (map[string]any, map[string]any) {
	if name, _ := c["service"].(string); name != "" && s.on.Load() {
		return nil, map[string]any{"service": "refused by the test"}
	}
	return s.PluginSchema.Validate(c)
}

// DB-less, plugin scope global: the global plugin is one of the pushed
// config's top-level plugins, beside the base's own; switching scope
// converges both ways; auto is service in DB-less mode.
func TestDBLessGlobalScope(t *testing.T) {
	base := `_format_version: "3.0"
services:
- name: operator-svc
  url: http://operator.internal:8080
  routes:
  - name: operator-route
    paths: [/op]
plugins:
- name: response-transformer
  instance_name: operator-global-rt
  config:
    add:
      headers: ["X-Op:1"]
`
	e := newScopeEnv(t, true, base, nil)
	e.setScope(translator.PluginScopeGlobal)
	e.registerTwo()
	if res := e.reconcile(); !res.Pushed || len(res.Refused) > 0 {
		t.Fatalf("push: %+v", res)
	}
	checkOperatorRT := func() {
		t.Helper()
		n := 0
		for _, p := range e.kong.List("plugins") {
			if p["instance_name"] == "operator-global-rt" && p["service"] == nil {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("operator's global plugin: %d", n)
		}
	}
	globalOnly := func() {
		t.Helper()
		global, services := e.registryPlugins()
		if len(global) != 1 || global[0]["id"] != translator.GlobalPluginID || global[0]["config"].(map[string]any)["registry_routes"] != true ||
			!sameStrings(services, []string{translator.FastPathName}) {
			t.Fatalf("global %v, services %v", global, services)
		}
	}
	globalOnly()
	checkOperatorRT()
	if st := e.sync.Status(); st.PluginScope != translator.PluginScopeGlobal || st.GlobalPluginShadowedBy != "" || !st.Healthy() {
		t.Fatalf("status: %+v", st)
	}
	if res := e.reconcile(); res.Pushed {
		t.Fatalf("pushed again without a change: %+v", res)
	}

	e.setScope(translator.PluginScopeService)
	e.reconcile()
	if global, services := e.registryPlugins(); len(global) != 0 || !sameStrings(services, []string{translator.FastPathName, v1, v2}) {
		t.Fatalf("service scope: global %v, services %v", global, services)
	}
	checkOperatorRT()

	e.setScope(translator.PluginScopeGlobal)
	e.reconcile()
	globalOnly()

	e.setScope(translator.PluginScopeAuto)
	e.reconcile()
	if _, ok := e.kong.Find("plugins", translator.GlobalPluginID); ok || e.sync.Status().PluginScope != translator.PluginScopeService {
		t.Fatalf("auto in DB-less mode is not service scope: %+v", e.sync.Status())
	}
}

// DB-less: an operator's own global service-registry plugin in the base
// (the file, or without one what Kong serves) takes the place of ours,
// which is left out: no refusal, /health names it, logged once.
func TestDBLessOperatorGlobalPluginWins(t *testing.T) {
	const operator = `_format_version: "3.0"
plugins:
- name: service-registry
  instance_name: operator-sr
  config:
    registry: redis
`
	for _, fromFile := range []bool{true, false} {
		name := "from kong"
		if fromFile {
			name = "from file"
		}
		t.Run(name, func(t *testing.T) {
			base := ""
			if fromFile {
				base = operator
			}
			e := newScopeEnv(t, true, base, nil)
			if !fromFile {
				if code, b := e.kongCall("POST", "/config", map[string]any{"config": operator}); code != 201 {
					t.Fatalf("operator's config: %d %v", code, b)
				}
			}
			e.setScope(translator.PluginScopeGlobal)
			e.registerTwo()
			for range 3 {
				if res := e.reconcile(); len(res.Refused) > 0 {
					t.Fatalf("refused: %+v", res.Refused)
				}
			}
			// Ours is left out; the route services carry their own plugins
			// (scope service), which Kong runs instead of the operator's.
			global, _ := e.registryPlugins()
			if len(global) != 1 || global[0]["instance_name"] != "operator-sr" {
				t.Fatalf("global %v", global)
			}
			e.checkService(v2, v1, v2)
			for _, n := range []string{v1, v2} {
				if _, ok := e.kong.Find("routes", n); !ok {
					t.Fatalf("route %s missing", n)
				}
			}
			e.checkFellBack(true)
		})
	}
}

// DB-less: a Kong refusing the global plugin (its plugin predates
// registry_routes) gets the config without it; the refusal is reported.
func TestDBLessRefusedGlobalPluginReported(t *testing.T) {
	e := newScopeEnv(t, true, "", noRegistryRoutes(t))
	e.setScope(translator.PluginScopeGlobal)
	e.registerTwo()
	res := e.reconcile()
	if !res.Pushed || len(res.Refused) != 1 || res.Refused[0].Kind != "plugins" || res.Refused[0].Route != translator.TagGlobal {
		t.Fatalf("push: %+v", res)
	}
	if _, ok := e.kong.Find("routes", v2); !ok {
		t.Fatal("the refused global plugin kept the routes out")
	}
	// The pushed config falls back to the route services' own plugins.
	e.checkService(v2, v1, v2)
	if st := e.sync.Status(); st.Healthy() || len(st.Refused) != 1 {
		t.Fatalf("status: %+v", st)
	}
}

// Scope auto needs the Kong mode: while Kong cannot tell it, the apply
// fails and counts as failed (Status, Stats) like any apply with Kong down.
func TestPluginScopeAutoWithKongDown(t *testing.T) {
	e := newScopeEnv(t, false, "", nil)
	e.url = e.kong.URL() // the recording proxy would answer for a stopped Kong
	e.setScope(translator.PluginScopeAuto)
	e.kong.Stop()
	e.registerTwo()
	if _, err := e.rec.ReconcileOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "detecting kong mode") {
		t.Fatalf("reconcile with kong down: %v", err)
	}
	if st := e.sync.Status(); st.LastError == "" || st.FailingSince.IsZero() {
		t.Fatalf("status: %+v", st)
	}
	if s := e.rec.Stats(); s.Errors != 1 || s.LastError == "" {
		t.Fatalf("stats: %+v", s)
	}
	if err := e.kong.Restart(); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	e.checkGlobal(v2)
	if st := e.sync.Status(); !st.Healthy() || !st.FailingSince.IsZero() {
		t.Fatalf("status after kong is back: %+v", st)
	}
}

// An unknown plugin scope is refused when the reconciler is made.
func TestReconcilerRefusesUnknownPluginScope(t *testing.T) {
	e := newScopeEnv(t, false, "", nil)
	s, _ := kongsync.NewSyncer(kongsync.Options{AdminURL: e.url})
	_, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: e.store, Syncer: s, Redis: e.redis.Client(),
		Translate: translator.Options{PluginScope: "route"}})
	if err == nil || !strings.Contains(err.Error(), "expected auto, service or global") {
		t.Fatalf("scope route: %v", err)
	}
}
