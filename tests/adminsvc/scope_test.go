package adminsvc_test

import (
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// TestKongDBModeGlobalScope: with SR_PLUGIN_SCOPE=auto adminsvc writes
// one global service-registry plugin in Kong DB mode instead of
// one per route service, heals it when deleted in Kong, and a restart with
// SR_PLUGIN_SCOPE=service puts the plugins back on the route services.
func TestKongDBModeGlobalScope(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_PLUGIN_SCOPE": "auto"}})
	if r := s.do("POST", "/register", `{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000",
	  "options":{"headers":{"X-API-Version":"2.0"},"rate_limit":{"enabled":true,"requests_per_min":100}}}`); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080"}`)
	waitFor(t, 10*time.Second, "/health plugin_scope global", func() bool { return healthKong(s)["plugin_scope"] == "global" })
	waitAgree(t, s, k, 10*time.Second)

	g, ok := k.Find("plugins", translator.GlobalPluginID)
	if !ok {
		t.Fatal("global plugin missing")
	}
	cfg := g["config"].(map[string]any)
	redis, _ := cfg["redis"].(map[string]any)
	if g["service"] != nil || g["route"] != nil || !hasTags(g["tags"], translator.TagManaged, translator.TagGlobal) ||
		cfg["registry_routes"] != true || cfg["registry"] != "redis" || redis["host"] != "127.0.0.1" || redis["port"] != float64(rs.Port) {
		t.Fatalf("global plugin: %v", g)
	}
	// The response-transformer stays on the route's service.
	v2, _ := k.Find("services", "sr-api.example.com_v2")
	waitFor(t, 10*time.Second, "the response-transformer of sr-api.example.com_v2", func() bool {
		for _, p := range k.List("plugins") {
			if ref, _ := p["service"].(map[string]any); ref != nil && ref["id"] == v2["id"] && p["name"] == translator.PluginResponseTransformer {
				return true
			}
		}
		return false
	})
	checkCatchAll(t, k, "sr-api.example.com_v1")

	if code, b := kongCall(t, k, "DELETE", "/plugins/"+translator.GlobalPluginID, nil); code != 204 {
		t.Fatalf("%d %v", code, b)
	}
	waitFor(t, 10*time.Second, "global plugin healed", func() bool { _, ok := k.Find("plugins", translator.GlobalPluginID); return ok })

	s.Stop()
	svcScope := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL()}) // the default: service
	waitFor(t, 10*time.Second, "/health plugin_scope service", func() bool { return healthKong(svcScope)["plugin_scope"] == "service" })
	waitAgree(t, svcScope, k, 10*time.Second)
	if _, ok := k.Find("plugins", translator.GlobalPluginID); ok {
		t.Fatal("global plugin left in plugin scope service")
	}
}
