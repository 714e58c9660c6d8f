package kongsync_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// fastEnv is newEnv with the fast path on (translator.Options.FastPath),
// the plugin's redis settings as adminsvc writes them, and the syncer's log
// kept for the tests that count lines.
type fastEnv struct {
	*env
	opts translator.Options
	log  *testbin.Buffer
	base string // the operator's base config (DB-less)
}

func newFastEnv(t *testing.T, dbless bool, base string, schema kongfake.PluginSchema) *fastEnv {
	t.Helper()
	return newFastEnvWith(t, fastEnvOptions{dbless: dbless, base: base, schema: schema})
}

// fastEnvOptions: freq is the fake's reported update frequency (the
// catch-all's settle time is 3 × freq, settle.go); clock the syncer's.
type fastEnvOptions struct {
	dbless bool
	base   string
	schema kongfake.PluginSchema // default kongfake.RegistrySchema
	freq   float64
	clock  func() time.Time // default time.Now
}

func newFastEnvWith(t *testing.T, o fastEnvOptions) *fastEnv {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	if o.schema == nil {
		o.schema = kongfake.RegistrySchema(t)
	}
	fake := kongfake.Start(t, kongfake.Options{DBLess: o.dbless, UpdateFrequency: o.freq,
		Plugins: map[string]kongfake.PluginSchema{"service-registry": o.schema}})
	e := &fastEnv{env: &env{t: t, redis: rs, store: store, kong: fake}, log: &testbin.Buffer{}, base: o.base,
		opts: translator.Options{FastPath: true, Redis: map[string]any{"host": "127.0.0.1", "port": rs.Port, "timeout_ms": 500}}}
	e.sync = e.newSyncer(o.clock)
	e.setFastPath(true)
	return e
}

// newSyncer is a syncer on the env's fake, as after an adminsvc restart
// (clock nil: time.Now).
func (e *fastEnv) newSyncer(clock func() time.Time) *kongsync.Syncer {
	e.t.Helper()
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: e.kong.URL(), BaseConfig: []byte(e.base), Attempts: 2,
		Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(e.log, nil)), Now: clock})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// setFastPath replaces the reconciler as adminsvc restarted with
// SR_FAST_PATH on or off would have it (same syncer, same Kong).
func (e *fastEnv) setFastPath(on bool) {
	e.t.Helper()
	e.opts.FastPath = on
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: e.store, Syncer: e.sync, Redis: e.redis.Client(),
		Interval: time.Hour, Translate: e.opts})
	if err != nil {
		e.t.Fatal(err)
	}
	e.rec = rec
}

// catchAll returns the catch-all's entities in Kong (nil when absent).
func (e *fastEnv) catchAll() (svc, rt, up, plug map[string]any) {
	svc, _ = e.kong.Find("services", translator.FastPathName)
	rt, _ = e.kong.Find("routes", translator.FastPathName)
	up, _ = e.kong.Find("upstreams", translator.FastPathName+".upstream")
	for _, p := range e.kong.List("plugins") {
		if ref, _ := p["service"].(map[string]any); ref != nil && svc != nil && ref["id"] == svc["id"] {
			plug = p
		}
	}
	return svc, rt, up, plug
}

// checkCatchAll fails unless Kong holds the whole catch-all as designed.
func (e *fastEnv) checkCatchAll() {
	e.t.Helper()
	svc, rt, up, plug := e.catchAll()
	if svc == nil || rt == nil || up == nil || plug == nil {
		e.t.Fatalf("catch-all incomplete: service %v route %v upstream %v plugin %v", svc != nil, rt != nil, up != nil, plug != nil)
	}
	for _, ent := range []map[string]any{svc, rt, up, plug} {
		if !hasAll(ent["tags"], translator.TagManaged, translator.TagFastPath) {
			e.t.Fatalf("catch-all entity %v without our tags: %v", ent["name"], ent["tags"])
		}
	}
	// hosts null, not []: Kong ranks a route with a hosts list (even
	// empty) above paths-only routes (priority_test.go).
	if rt["hosts"] != nil || !hasAll(rt["paths"], "/") || len(rt["paths"].([]any)) != 1 ||
		rt["methods"] != nil || rt["strip_path"] != false || rt["preserve_host"] != true || !hasAll(rt["protocols"], "http", "https") {
		e.t.Fatalf("catch-all route: %v", rt)
	}
	if svc["host"] != up["name"] {
		e.t.Fatalf("catch-all service host %v, upstream %v", svc["host"], up["name"])
	}
	if ts := e.targetsOf(up["id"].(string)); len(ts) != 0 {
		e.t.Fatalf("catch-all upstream has targets: %v", ts)
	}
	cfg := plug["config"].(map[string]any)
	redis, _ := cfg["redis"].(map[string]any)
	if plug["name"] != "service-registry" || cfg["registry"] != "redis" || cfg["fast_path"] != true ||
		redis == nil || redis["host"] != "127.0.0.1" || redis["port"] != float64(e.redis.Port) || redis["timeout_ms"] != 500.0 {
		e.t.Fatalf("catch-all plugin: %v", plug)
	}
}

func (e *fastEnv) targetsOf(upstreamID string) []map[string]any {
	var out []map[string]any
	for _, tg := range e.kong.List("targets") {
		if ref, _ := tg["upstream"].(map[string]any); ref != nil && ref["id"] == upstreamID {
			out = append(out, tg)
		}
	}
	return out
}

func (e *fastEnv) checkNoCatchAll() {
	e.t.Helper()
	if svc, rt, up, plug := e.catchAll(); svc != nil || rt != nil || up != nil || plug != nil {
		e.t.Fatalf("catch-all in kong: service %v route %v upstream %v plugin %v", svc, rt, up, plug)
	}
}

func hasAll(list any, want ...string) bool {
	l, _ := list.([]any)
	for _, w := range want {
		found := false
		for _, x := range l {
			found = found || x == w
		}
		if !found {
			return false
		}
	}
	return true
}

// DB mode: the first sync creates the catch-all with the routes; a second
// full reconcile writes nothing (Kong's form of it is not drift); deleted
// or edited in Kong it is healed; SR_FAST_PATH=off removes it and only it.
func TestFastPathDBModeCreatedHealedRemoved(t *testing.T) {
	e := newFastEnv(t, false, "", nil)
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")
	e.reconcile()
	e.checkCatchAll()
	if st := e.sync.Status(); st.FastPath != kongsync.FastPathOn || st.FastPathShadowedBy != "" || !st.Healthy() {
		t.Fatalf("status: %+v", st)
	}
	if res := e.reconcile(); res.Changes() != 0 {
		t.Fatalf("second reconcile changed %d entities: %+v", res.Changes(), res)
	}
	// The dedicated route's plugin reaches the same Redis the same way.
	dedicated, _ := e.kong.Find("services", "sr-api.example.com_v1")
	_, _, _, plug := e.catchAll()
	for _, p := range e.kong.List("plugins") {
		if ref, _ := p["service"].(map[string]any); ref["id"] == dedicated["id"] {
			if a, b := p["config"].(map[string]any)["redis"], plug["config"].(map[string]any)["redis"]; !sameJSONValue(a, b) {
				t.Fatalf("redis settings differ: dedicated %v, catch-all %v", a, b)
			}
		}
	}

	// Drift: the route deleted, the plugin switched off fast_path.
	if code, b := e.kongCall("DELETE", "/routes/"+translator.FastPathName, nil); code != 204 {
		t.Fatalf("%d %v", code, b)
	}
	if code, b := e.kongCall("PATCH", "/plugins/"+plug["id"].(string), map[string]any{"config": map[string]any{"fast_path": false}}); code != 200 {
		t.Fatalf("%d %v", code, b)
	}
	if res := e.reconcile(); res.Created != 1 || res.Updated != 1 {
		t.Fatalf("healing: %+v", res)
	}
	e.checkCatchAll()

	// A catch-all Kong holds with hosts [] (as adminsvc wrote it before it
	// left the key out) is written once, then null is no drift.
	if code, b := e.kongCall("PATCH", "/routes/"+translator.FastPathName, map[string]any{"hosts": []string{}}); code != 200 {
		t.Fatalf("%d %v", code, b)
	}
	if res := e.reconcile(); res.Updated != 1 || res.Changes() != 1 {
		t.Fatalf("healing hosts []: %+v", res)
	}
	e.checkCatchAll()
	if res := e.reconcile(); res.Changes() != 0 {
		t.Fatalf("after healing hosts []: %+v", res)
	}

	e.setFastPath(false)
	if res := e.reconcile(); res.Deleted != 4 {
		t.Fatalf("off: %+v", res)
	}
	e.checkNoCatchAll()
	if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
		t.Fatal("off removed a registered route")
	}
	if st := e.sync.Status(); st.FastPath != kongsync.FastPathOff {
		t.Fatalf("status off: %+v", st)
	}
	e.setFastPath(true)
	if _, err := e.rec.ApplyChangesOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkCatchAll()
}

func sameJSONValue(a, b any) bool {
	ma, _ := a.(map[string]any)
	mb, _ := b.(map[string]any)
	if len(ma) != len(mb) {
		return false
	}
	for k, v := range ma {
		if mb[k] != v {
			return false
		}
	}
	return true
}

// DB-less: the catch-all is in the pushed config with the operator's base;
// Kong restarted empty gets it back; off leaves it out of the next push.
func TestFastPathDBLessPushedAndRemoved(t *testing.T) {
	base := "_format_version: \"3.0\"\nservices:\n- name: operator-svc\n  url: http://op:8080\n  routes:\n  - name: operator-route\n    paths: [/op]\n"
	e := newFastEnv(t, true, base, nil)
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")
	if res := e.reconcile(); !res.Pushed {
		t.Fatalf("no push: %+v", res)
	}
	e.checkCatchAll()
	if _, ok := e.kong.Find("routes", "operator-route"); !ok {
		t.Fatal("operator route lost")
	}
	pushes := e.kong.ConfigPushes()
	if res := e.reconcile(); res.Pushed || e.kong.ConfigPushes() != pushes {
		t.Fatalf("pushed again without a change: %+v", res)
	}
	e.kong.Wipe()
	e.reconcile()
	e.checkCatchAll()
	e.setFastPath(false)
	e.reconcile()
	e.checkNoCatchAll()
	if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
		t.Fatal("off removed a registered route")
	}
	if st := e.sync.Status(); st.FastPath != kongsync.FastPathOff {
		t.Fatalf("status: %+v", st)
	}
}

// An operator's route catching "/" without hosts: ours is not created
// (DB mode), /health's status names it, the log says so once; when it goes
// ours comes; when it comes back ours goes.
func TestFastPathShadowedByOperatorRouteDBMode(t *testing.T) {
	e := newFastEnv(t, false, "", nil)
	if code, b := e.kongCall("POST", "/services", map[string]any{"name": "op-svc", "url": "http://op:8080"}); code != 201 {
		t.Fatalf("%d %v", code, b)
	}
	if code, b := e.kongCall("POST", "/services/op-svc/routes", map[string]any{"name": "op-root", "paths": []string{"/"}}); code != 201 {
		t.Fatalf("%d %v", code, b)
	}
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")
	e.reconcile()
	e.reconcile()
	if _, err := e.rec.ApplyChangesOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkNoCatchAll()
	if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
		t.Fatal("registered route not created")
	}
	st := e.sync.Status()
	if st.FastPath != kongsync.FastPathShadowed || st.FastPathShadowedBy != "op-root" || !st.Healthy() {
		t.Fatalf("status: %+v", st)
	}
	if n := strings.Count(e.log.String(), "catches / without hosts"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, e.log.String())
	}
	if code, b := e.kongCall("DELETE", "/routes/op-root", nil); code != 204 {
		t.Fatalf("%d %v", code, b)
	}
	e.reconcile()
	e.checkCatchAll()
	if st := e.sync.Status(); st.FastPath != kongsync.FastPathOn || st.FastPathShadowedBy != "" {
		t.Fatalf("status after the operator's route left: %+v", st)
	}
	// A methods-only route would lose its traffic to ours (Kong ranks a
	// paths-only route above it): ours goes.
	if code, b := e.kongCall("POST", "/services/op-svc/routes", map[string]any{"name": "op-put", "methods": []string{"PUT"}}); code != 201 {
		t.Fatalf("%d %v", code, b)
	}
	e.reconcile()
	e.checkNoCatchAll()
	if st := e.sync.Status(); st.FastPathShadowedBy != "op-put" {
		t.Fatalf("status: %+v", st)
	}
	if _, ok := e.kong.Find("routes", "op-put"); !ok {
		t.Fatal("operator's route touched")
	}
}

// DB-less: an operator's "/" route in the base file (nested, as kong.yml
// writes it) or in what Kong serves (flat, as GET /config writes it) keeps
// ours out of the push.
func TestFastPathShadowedByOperatorRouteDBLess(t *testing.T) {
	base := "_format_version: \"3.0\"\nservices:\n- name: operator-svc\n  url: http://op:8080\n  routes:\n  - name: operator-root\n    paths: [/]\n"
	e := newFastEnv(t, true, base, nil)
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")
	e.reconcile()
	e.checkNoCatchAll()
	if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
		t.Fatal("registered route not pushed")
	}
	if st := e.sync.Status(); st.FastPath != kongsync.FastPathShadowed || st.FastPathShadowedBy != "operator-root" {
		t.Fatalf("status: %+v", st)
	}

	// Without a base file, the base is what Kong serves.
	k := newFastEnv(t, true, "", nil)
	if code, b := k.kongCall("POST", "/config", map[string]any{"_format_version": "3.0",
		"services": []any{map[string]any{"name": "op", "url": "http://op:1", "routes": []any{map[string]any{"name": "kong-root", "paths": []string{"/"}}}}}}); code != 201 {
		t.Fatalf("%d %v", code, b)
	}
	k.register("api.example.com", "/v1", "http://api-v1:8080", "")
	k.reconcile()
	k.checkNoCatchAll()
	if st := k.sync.Status(); st.FastPathShadowedBy != "kong-root" {
		t.Fatalf("status: %+v", st)
	}
	if _, ok := k.kong.Find("routes", "kong-root"); !ok {
		t.Fatal("operator route lost")
	}
}

// olderPlugin is the plugin schema of an older plugin binary, which lacks
// the field unknown: Kong refuses a config setting it ("unknown field").
type olderPlugin struct {
	kongfake.PluginSchema
	unknown string
}

func (o olderPlugin) Validate(c map[string]any) (map[string]any, map[string]any) {
	if _, ok := c[o.unknown]; ok {
		return nil, map[string]any{o.unknown: "unknown field"}
	}
	return o.PluginSchema.Validate(c)
}

// refuseFastPath is a plugin from before fast_path.
func refuseFastPath(t *testing.T) olderPlugin {
	return olderPlugin{kongfake.RegistrySchema(t), "fast_path"}
}

// A Kong whose plugin refuses fast_path: the refusal is reported, the
// registered routes are applied, and the catch-all's route is not created
// without its plugin (it would answer every unknown request 503, not 404).
func TestFastPathRefusedPluginLeavesNoBareCatchAll(t *testing.T) {
	for _, dbless := range []bool{false, true} {
		e := newFastEnv(t, dbless, "", refuseFastPath(t))
		e.register("api.example.com", "/v1", "http://api-v1:8080", "")
		res, err := e.rec.ReconcileOnce(context.Background())
		if err != nil {
			t.Fatalf("dbless %v: %v", dbless, err)
		}
		if len(res.Refused) == 0 || res.Refused[0].Route != translator.TagFastPath {
			t.Fatalf("dbless %v: refused %+v", dbless, res.Refused)
		}
		if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
			t.Fatalf("dbless %v: registered route not applied", dbless)
		}
		if _, ok := e.kong.Find("routes", translator.FastPathName); ok {
			t.Fatalf("dbless %v: catch-all route without its plugin", dbless)
		}
		if st := e.sync.Status(); st.FastPath != kongsync.FastPathRefused || st.Healthy() {
			t.Fatalf("dbless %v: status %+v", dbless, st)
		}
	}
}
