package kongfake

import (
	"reflect"
	"testing"
)

// Global plugins (no service, route or consumer), as Kong holds them: one
// instance per plugin name (the plugins' cache key), refused with Kong's
// 409 unique violation; a global one beside a service-scoped one of the
// same name is fine; the same in a DB-less /config's top-level plugins.
func TestGlobalPluginUniquePerName(t *testing.T) {
	f := New(Options{Plugins: map[string]PluginSchema{"service-registry": nil}})
	const ours, theirs = "1ae8fbc7-e70d-55b4-b79f-4ebc98006197", "0b7c4d1e-3f4a-4b6c-9d8e-1a2b3c4d5e71"
	st, p := call(t, f, "PUT", "/plugins/"+ours, map[string]any{"name": "service-registry", "service": nil, "config": map[string]any{"registry": "redis"}, "tags": []string{"managed-by:service-registry"}})
	if st != 200 || p["service"] != nil || p["route"] != nil || p["consumer"] != nil {
		t.Fatalf("global plugin: %d %v", st, p)
	}
	// Written again by id: the same instance, no conflict with itself.
	if st, b := call(t, f, "PUT", "/plugins/"+ours, map[string]any{"name": "service-registry", "service": nil, "config": map[string]any{"registry": "kong"}}); st != 200 {
		t.Fatalf("rewrite: %d %v", st, b)
	}
	call(t, f, "POST", "/services", map[string]any{"name": "s1", "host": "s1.internal"})
	if st, b := call(t, f, "POST", "/services/s1/plugins", map[string]any{"name": "service-registry"}); st != 201 {
		t.Fatalf("service-scoped beside the global one: %d %v", st, b)
	}
	st, b := call(t, f, "PUT", "/plugins/"+theirs, map[string]any{"name": "service-registry"})
	want := map[string]any{"code": 5.0, "name": "unique constraint violation",
		"message": `UNIQUE violation detected on '{consumer=null,name="service-registry",route=null,service=null}'`,
		"fields":  map[string]any{"consumer": nil, "name": "service-registry", "route": nil, "service": nil}}
	if st != 409 || !reflect.DeepEqual(b, want) {
		t.Fatalf("second global instance: %d %v", st, b)
	}
	if st, _ := call(t, f, "POST", "/plugins", map[string]any{"name": "service-registry"}); st != 409 {
		t.Fatalf("POST of a second global instance: %d", st)
	}
	// Gone, the place is free.
	if st, _ := call(t, f, "DELETE", "/plugins/"+ours, nil); st != 204 {
		t.Fatal(st)
	}
	if st, b := call(t, f, "PUT", "/plugins/"+theirs, map[string]any{"name": "service-registry"}); st != 200 {
		t.Fatalf("after the first one's delete: %d %v", st, b)
	}

	dbless := New(Options{DBLess: true, Plugins: map[string]PluginSchema{"service-registry": nil}})
	doc := map[string]any{"_format_version": "3.0", "plugins": []any{map[string]any{"id": ours, "name": "service-registry", "service": nil}},
		"services": []any{map[string]any{"name": "s1", "host": "s1.internal", "plugins": []any{map[string]any{"name": "service-registry"}}}}}
	if st, b := call(t, dbless, "POST", "/config", doc); st != 201 {
		t.Fatalf("dbless global plugin: %d %v", st, b)
	}
	if p, ok := dbless.db["plugins"][ours]; !ok || p["service"] != nil {
		t.Fatalf("dbless global plugin stored as %v", p)
	}
	doc["plugins"] = append(doc["plugins"].([]any), map[string]any{"id": theirs, "name": "service-registry"})
	st, b = call(t, dbless, "POST", "/config", doc)
	errs, _ := b["fields"].(map[string]any)["plugins"].([]any)
	if st != 400 || b["code"] != 14.0 || len(errs) != 2 || errs[0] != nil || errs[1] == nil {
		t.Fatalf("two global instances in /config: %d %v", st, b)
	}
}
