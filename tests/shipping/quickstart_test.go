package shipping

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// TestQuickStartDBless plays the README's compose quick start without
// Docker: adminsvc in DB-less mode with the root kong.yml as its base
// config, pushing to the DB-less Admin API fake (plugin schema from -dump),
// and the README's register call. Kong must end up with kong.yml's
// entities and the registered route, both in one accepted POST /config.
func TestQuickStartDBless(t *testing.T) {
	plugin, err := kongschema.ParseDump(pluginDump(t))
	if err != nil {
		t.Fatal(err)
	}
	fake := kongfake.Start(t, kongfake.Options{DBLess: true, Plugins: map[string]kongfake.PluginSchema{"service-registry": plugin}})
	reg := clienttest.Start(t, clienttest.Options{Env: []string{
		"SR_KONG_ADMIN_URL=" + fake.URL(),
		"SR_KONG_MODE=dbless",
		"SR_KONG_BASE_CONFIG=" + rootPath("kong.yml"),
		"SR_RECONCILE_INTERVAL=1s",
	}})
	c, err := client.New(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The README's first curl line.
	if _, err := c.Register(ctx, client.Registration{Host: "api.example.com", Path: "/echo", Backend: "http://echo-backend:8080"}); err != nil {
		t.Fatalf("register: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var routeOK bool
		for _, r := range fake.List("routes") {
			if containsTag(r["hosts"], "api.example.com") && containsTag(r["paths"], "/echo") {
				routeOK = true
			}
		}
		_, example := fake.Find("services", "example")
		var global bool
		for _, p := range fake.List("plugins") {
			if p["name"] == "service-registry" && p["service"] == nil && p["route"] == nil && containsTag(p["tags"], "managed-by:deck") {
				global = true
			}
		}
		if routeOK && example && global {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s Kong has: registered route %v, kong.yml's example service %v, global plugin %v; pushes %d\nadminsvc log:\n%s",
				routeOK, example, global, fake.ConfigPushes(), tail(reg.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The registered backend is Kong's target for that route.
	var backendOK bool
	for _, tg := range fake.List("targets") {
		if tg["target"] == "echo-backend:8080" {
			backendOK = true
		}
	}
	if !backendOK {
		t.Errorf("no Kong target echo-backend:8080: %v", fake.List("targets"))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
