package translator

import "testing"

// The catch-all's plugin config is accepted by the plugin's schema (the
// -dump snapshot Kong loads) and keeps fast_path after Kong's defaults.
func TestCatchAllPluginConfigAcceptedBySchema(t *testing.T) {
	schema := snapshotSchema(t)
	svc, up := FastPath(Options{Redis: map[string]any{"host": "10.0.0.5", "port": 6380, "password": "", "timeout_ms": 500}})
	in, filled, why := schemaAccepts(schema, svc.Plugins[0].Config)
	if why != "" {
		t.Fatalf("the catch-all's plugin config: %s", why)
	}
	if filled["fast_path"] != true || filled["registry"] != "redis" {
		t.Fatalf("after defaults: %v", filled)
	}
	if _, set := in["redis"].(map[string]any)["password"]; set {
		t.Fatalf("empty redis setting sent instead of the schema default: %v", in)
	}
	if len(up.Targets) != 0 || svc.Host != up.Name || len(svc.Routes) != 1 || len(svc.Routes[0].Hosts) != 0 {
		t.Fatalf("catch-all shape: %+v %+v", svc, up)
	}
	for _, tags := range [][]string{svc.Tags, svc.Routes[0].Tags, svc.Plugins[0].Tags, up.Tags} {
		if !IsFastPath(tags) {
			t.Fatalf("tags %v", tags)
		}
	}
	if IsFastPath(Tags("a.example", "/")) || IsFastPath([]string{TagFastPath}) {
		t.Fatal("IsFastPath on a route's tags or without the managed tag")
	}
}
