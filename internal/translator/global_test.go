package translator

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

func scopeInput() ([]RouteInput, Options) {
	routes := []RouteInput{
		{Route: registry.Route{Host: "api.example.com", Path: "/v2", Backend: "http://api-v2:9000",
			Options: json.RawMessage(`{"headers":{"X-A":"1"},"rate_limit":{"enabled":true,"requests_per_min":10}}`)}, Service: "sr-api.example.com_v2"},
		{Route: registry.Route{Host: "api.example.com", Path: "/v1", Backend: "http://api-v1:9000"}, Service: "sr-api.example.com_v1"},
	}
	return routes, Options{FastPath: true, Redis: map[string]any{"host": "10.0.0.5", "port": 6380, "password": ""}}
}

// Global scope differs from service scope only in where the
// service-registry plugin is: out of each route's service, one global
// instance in State.Plugins. The response-transformer and the fast path's
// service-scoped instance stay.
func TestGlobalScopeOnlyMovesTheRegistryPlugin(t *testing.T) {
	routes, opts := scopeInput()
	svcScope := Translate(routes, opts)
	opts.PluginScope = PluginScopeGlobal
	global := Translate(routes, opts)

	if len(svcScope.Plugins) != 0 {
		t.Fatalf("service scope has global plugins: %v", svcScope.Plugins)
	}
	want := Plugin{ID: GlobalPluginID, Name: PluginRegistry, Enabled: true, Tags: GlobalTags(),
		Config: map[string]any{"registry": "redis", "registry_routes": true, "redis": map[string]any{"host": "10.0.0.5", "port": 6380}}}
	if len(global.Plugins) != 1 || !reflect.DeepEqual(global.Plugins[0], want) {
		t.Fatalf("global plugins: %+v", global.Plugins)
	}
	if GlobalPluginID != ID("plugin", GlobalPluginName+"/"+PluginRegistry) || !IsGlobal(global.Plugins[0].Tags) {
		t.Fatalf("global plugin id or tags: %s %v", GlobalPluginID, global.Plugins[0].Tags)
	}
	// Dropping the route services' registry plugins from service scope
	// gives global scope's services.
	for i := range svcScope.Services {
		s := &svcScope.Services[i]
		if IsFastPath(s.Tags) {
			continue
		}
		kept := []Plugin{}
		for _, p := range s.Plugins {
			if p.Name != PluginRegistry {
				kept = append(kept, p)
			}
		}
		s.Plugins = kept
	}
	svcScope.Plugins = global.Plugins
	if !reflect.DeepEqual(asJSON(t, svcScope), asJSON(t, global)) {
		t.Fatalf("global scope differs beyond the registry plugin:\n%v\n%v", asJSON(t, svcScope), asJSON(t, global))
	}
	names := map[string][]string{}
	for _, s := range global.Services {
		for _, p := range s.Plugins {
			names[s.Name] = append(names[s.Name], p.Name)
		}
	}
	if !reflect.DeepEqual(names, map[string][]string{"sr-api.example.com_v2": {PluginResponseTransformer}, FastPathName: {PluginRegistry}}) {
		t.Fatalf("plugins per service in global scope: %v", names)
	}
}

// Only global is global: empty, service, auto (resolved by kongsync, not
// here) and anything else translate as service scope.
func TestPluginScopeDefaultsToService(t *testing.T) {
	routes, opts := scopeInput()
	want := asJSON(t, Translate(routes, opts))
	for _, scope := range []string{"", PluginScopeService, PluginScopeAuto, "Global"} {
		opts.PluginScope = scope
		if got := asJSON(t, Translate(routes, opts)); !reflect.DeepEqual(got, want) {
			t.Errorf("scope %q: not service scope", scope)
		}
	}
}

// ForRoute answers with the route's service-scoped config and plugin id
// whatever the scope: the plugin serves a route with them in either.
func TestForRouteIgnoresPluginScope(t *testing.T) {
	routes, opts := scopeInput()
	for _, ri := range routes {
		want, err := ForRoute(ri.Route, ri.Service, opts)
		if err != nil {
			t.Fatal(err)
		}
		if want.PluginID != ID("plugin", ri.Service+"/"+PluginRegistry) || want.Config["service"] != ri.Service {
			t.Fatalf("service scope: %+v", want)
		}
		for _, scope := range []string{PluginScopeGlobal, PluginScopeAuto} {
			opts := opts
			opts.PluginScope = scope
			got, err := ForRoute(ri.Route, ri.Service, opts)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("scope %s: %+v %v, want %+v", scope, got, err, want)
			}
		}
	}
}

// Kong accepts the global plugin's config (the plugin's -dump snapshot)
// and the plugin's own checks pass; registry_routes survives the defaults.
func TestGlobalPluginConfigAcceptedBySchema(t *testing.T) {
	schema := snapshotSchema(t)
	for _, redis := range []map[string]any{nil, {"host": "10.0.0.5", "port": 6380, "password": "", "ssl": true, "server_name": "redis.internal"}} {
		p := GlobalPlugin(Options{Redis: redis, PluginScope: PluginScopeGlobal})
		in, filled, why := schemaAccepts(schema, p.Config)
		if why != "" {
			t.Fatalf("the global plugin's config: %s", why)
		}
		if filled["registry_routes"] != true || filled["registry"] != "redis" || filled["fast_path"] == true {
			t.Fatalf("after defaults: %v", filled)
		}
		if _, set := in["redis"]; set != (redis != nil) {
			t.Fatalf("redis record %v from %v", in["redis"], redis)
		}
	}
}

// TestServiceScopeOfGlobal: the state of scope global turned back into
// scope service (the sync's fallback when an operator's global plugin is
// in the way) is exactly what scope service translates.
func TestServiceScopeOfGlobal(t *testing.T) {
	routes, opts := scopeInput()
	opts.FastPath = true
	service := Translate(routes, opts)
	opts.PluginScope = PluginScopeGlobal
	global := Translate(routes, opts)
	back := ServiceScope(global)
	if !reflect.DeepEqual(back, service) {
		a, _ := json.MarshalIndent(back, "", " ")
		b, _ := json.MarshalIndent(service, "", " ")
		t.Fatalf("ServiceScope(global):\n%s\nservice:\n%s", a, b)
	}
	// The global state is left as it was.
	if len(global.Plugins) != 1 || global.Services[0].RegistryPlugin == nil {
		t.Fatalf("ServiceScope changed its argument: %+v", global)
	}
	if again := ServiceScope(service); !reflect.DeepEqual(again, service) {
		t.Fatal("ServiceScope of a service-scope state changed it")
	}
}
