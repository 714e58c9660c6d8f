package translator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// The catch-all's plugin config is accepted by the plugin's schema (the
// -dump snapshot Kong loads) and keeps fast_path after Kong's defaults.
func TestCatchAllPluginConfigAcceptedBySchema(t *testing.T) {
	dump, err := os.ReadFile(filepath.Join("..", "..", "kong", "schemas", "service-registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := kongschema.ParseDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	svc, up := FastPath(Options{Redis: map[string]any{"host": "10.0.0.5", "port": 6380, "password": "", "timeout_ms": 500}})
	b, _ := json.Marshal(svc.Plugins[0].Config)
	var in map[string]any
	_ = json.Unmarshal(b, &in)
	filled, errs := schema.Validate(in)
	if errs != nil {
		t.Fatalf("kong refuses the catch-all's plugin config %s: %v", b, errs)
	}
	if e := pluginRefuses(schema.ForPlugin(filled)); len(e) > 0 {
		t.Fatalf("plugin refuses %s: %v", b, e)
	}
	if filled["fast_path"] != true || filled["registry"] != "redis" {
		t.Fatalf("after defaults: %v", filled)
	}
	if _, set := in["redis"].(map[string]any)["password"]; set {
		t.Fatalf("empty redis setting sent instead of the schema default: %s", b)
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
