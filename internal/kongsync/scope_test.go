package kongsync

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// stateScoped is stateOf in a plugin scope, one route with headers.
func stateScoped(t *testing.T, scope string) translator.State {
	t.Helper()
	var in []translator.RouteInput
	for path, opts := range map[string]string{"/a": `{"headers":{"X-A":"1"}}`, "/b": ""} {
		r := registry.Route{Host: "plan.example.com", Path: path, Backend: "http://b:80"}
		if opts != "" {
			r.Options = json.RawMessage(opts)
		}
		in = append(in, translator.RouteInput{Route: r, Service: registry.ServiceName(r.Host, r.Path)})
	}
	return translator.Translate(in, translator.Options{PluginScope: scope, FastPath: true})
}

// asKongShaped is asKong with plugin configs as Kong answers them (JSON
// numbers and lists), so that equal configs compare equal.
func asKongShaped(t *testing.T, want desired) actual {
	t.Helper()
	have := asKong(want)
	for id, e := range have.byKind[kindPlugin] {
		pl := e.(plugin)
		pl.Config = jsonShaped(t, pl.Config).(map[string]any)
		have.byKind[kindPlugin][id] = pl
	}
	return have
}

// opsIn lists "action name" of a phase's plugin ops, with "global" for
// the global plugin, sorted.
func opsIn(phase []op) string {
	var out []string
	for _, o := range phase {
		name := o.e.label()
		if global(o.e) {
			name = "global"
		}
		out = append(out, o.act.String()+" "+o.e.kind().String()+" "+name)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Switching scope, the global plugin is written before the route
// services' service-registry plugins are deleted (service → global), and
// deleted after they are written (global → service); the fast path's and
// the response-transformer are not touched.
func TestPlanGlobalPluginBeforeWhatItReplaces(t *testing.T) {
	svcScope := newDesired(stateScoped(t, translator.PluginScopeService))
	globalScope := newDesired(stateScoped(t, translator.PluginScopeGlobal))

	p := planFull(globalScope, asKongShaped(t, svcScope))
	ph := p.phases()
	if len(ph) != 2 || opsIn(ph[0]) != "create plugins global" ||
		opsIn(ph[1]) != "delete plugins service-registry, delete plugins service-registry" {
		t.Fatalf("service → global:\n%s", describe(p))
	}
	if r := p.result(); r.Created != 1 || r.Deleted != 2 {
		t.Fatalf("counts: %+v", r)
	}

	p = planFull(svcScope, asKongShaped(t, globalScope))
	ph = p.phases()
	if len(ph) != 2 || opsIn(ph[0]) != "create plugins service-registry, create plugins service-registry" ||
		opsIn(ph[1]) != "delete plugins global" {
		t.Fatalf("global → service:\n%s", describe(p))
	}
	if r := p.result(); r.Created != 2 || r.Deleted != 1 {
		t.Fatalf("counts: %+v", r)
	}

	// Known by id only (a change-triggered plan), the global plugin is
	// still deleted last.
	known := applied{}
	for k, h := range globalScope.hashes() {
		e, _ := globalScope.get(k.k, k.id)
		known[k] = appliedEntry{hash: h, parent: e.parent()}
	}
	p = planChanges(svcScope, known, svcScope.hashes())
	ph = p.phases()
	if len(ph) != 2 || opsIn(ph[1]) != "delete plugins global" {
		t.Fatalf("change-triggered global → service: %v", ph)
	}
	// Deleted together with other entities, still after every write.
	gone := newDesired(stateOf(t, map[string]string{"/c": "http://c:80"}))
	p = planFull(gone, asKongShaped(t, globalScope))
	ph = p.phases()
	if opsIn(ph[len(ph)-1]) != "delete plugins global" || len(ph) < 3 {
		t.Fatalf("global plugin not deleted last:\n%s", describe(p))
	}
}

// The global plugin is its own unit: written without a service (null, so
// a PUT makes it global), tagged apart from every route and from the
// fast path, kept when the catch-all is left out.
func TestDesiredGlobalPlugin(t *testing.T) {
	st := stateScoped(t, translator.PluginScopeGlobal)
	st.Errors = []translator.RouteError{{Host: "plan.example.com", Path: "/gone", Error: "bug"}}
	d := newDesired(st)
	e, ok := d.get(kindPlugin, translator.GlobalPluginID)
	if !ok || !global(e) || e.(plugin).Service != nil {
		t.Fatalf("global plugin in desired: %+v %v", e, ok)
	}
	b, _ := json.Marshal(e)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	if v, set := body["service"]; !set || v != nil || body["config"].(map[string]any)["registry_routes"] != true {
		t.Fatalf("global plugin body: %s", b)
	}
	if tagPair(e.tagList()) != translator.TagGlobal || d.protected(e) {
		t.Fatalf("tag pair %q, protected %v", tagPair(e.tagList()), d.protected(e))
	}
	if global(newPlugin(translator.Plugin{Name: "x", Tags: translator.FastPathTags()}, "s")) {
		t.Fatal("the catch-all's plugin taken for the global one")
	}
	if _, ok := d.withoutFastPath().get(kindPlugin, translator.GlobalPluginID); !ok {
		t.Fatal("withoutFastPath dropped the global plugin")
	}
	if got := withoutFastPath(st); len(got.Plugins) != 1 || wantsFastPath(got) {
		t.Fatalf("withoutFastPath(state): %+v", got.Plugins)
	}
	if !hasGlobal(st) || hasGlobal(stateScoped(t, translator.PluginScopeService)) {
		t.Fatal("hasGlobal")
	}
}

func TestPluginScopeAuto(t *testing.T) {
	if scopeFor(ModeDB) != translator.PluginScopeGlobal || scopeFor(ModeDBLess) != translator.PluginScopeService {
		t.Fatal("auto: global in DB mode, service in DB-less mode")
	}
	for _, ok := range []string{"", "auto", "service", "global"} {
		if checkPluginScope(ok) != nil {
			t.Fatalf("%q refused", ok)
		}
	}
	if err := checkPluginScope("Global"); err == nil || !strings.Contains(err.Error(), "expected auto, service or global") {
		t.Fatalf("Global: %v", err)
	}
}

// DB-less: ours joins the base's top-level plugins; an operator's own
// global service-registry plugin is found in the base whatever form the
// base writes its foreign keys in.
func TestDeclarativeGlobalPlugin(t *testing.T) {
	base := map[string]any{"plugins": []any{
		map[string]any{"name": "response-transformer", "config": map[string]any{}},
		map[string]any{"name": "service-registry", "service": "op-svc"},
		map[string]any{"name": "service-registry", "route": map[string]any{"id": "r1"}},
		map[string]any{"name": "service-registry", "tags": []any{translator.TagManaged, translator.TagGlobal}},
	}}
	st := stateScoped(t, translator.PluginScopeGlobal)
	body, err := BuildDeclarative(base, st)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Plugins []map[string]any `json:"plugins"`
	}
	_ = json.Unmarshal(body, &doc)
	var names []string
	for _, p := range doc.Plugins {
		names = append(names, p["name"].(string))
	}
	// The base's own plugins kept, its managed one (a stale copy) replaced by ours.
	if !reflect.DeepEqual(names, []string{"response-transformer", "service-registry", "service-registry", "service-registry"}) ||
		doc.Plugins[3]["id"] != translator.GlobalPluginID {
		t.Fatalf("top-level plugins: %v", doc.Plugins)
	}
	if got := declarativeGlobal(base, translator.PluginRegistry); got != "" {
		t.Fatalf("scoped or managed plugins taken for an operator's global one: %q", got)
	}
	for want, p := range map[string]map[string]any{
		"op-global":        {"name": "service-registry", "instance_name": "op-global", "id": "x"},
		"id-1":             {"name": "service-registry", "id": "id-1", "service": nil, "route": "", "consumer": map[string]any{}},
		"service-registry": {"name": "service-registry"},
	} {
		b := map[string]any{"plugins": append(base["plugins"].([]any), p)}
		if got := declarativeGlobal(b, translator.PluginRegistry); got != want {
			t.Fatalf("%v: %q, want %q", p, got, want)
		}
	}
	// Without global plugins and without base plugins, no plugins key.
	body, _ = BuildDeclarative(map[string]any{}, stateScoped(t, translator.PluginScopeService))
	var top map[string]any
	_ = json.Unmarshal(body, &top)
	if _, set := top["plugins"]; set {
		t.Fatalf("top-level plugins without any: %v", top["plugins"])
	}
}
