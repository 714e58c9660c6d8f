package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// issue 13 defect 1: a registration as adminsvc writes it to Kong (the
// translator's service, route with preserve_host: true and plugin with
// registry = redis), served by the real plugin binary: the instance must
// see the client's Host, as the route says. Before the fix the plugin's
// set_target made the instance's IP the Host.
func TestTranslatedRoutePreservesHost(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	var mu sync.Mutex
	var hosts []string
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
	}))
	t.Cleanup(be.Close)
	addr := strings.TrimPrefix(be.URL, "http://")

	route := registry.Route{Host: "api.example.com", Path: "/orders", Backend: be.URL}
	name := registry.ServiceName(route.Host, route.Path)
	if _, err := store.PutInstance(t.Context(), name, registry.Instance{ID: "i1", Address: addr, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	st := translator.Translate([]translator.RouteInput{{Route: route, Service: name}},
		translator.Options{Redis: map[string]any{"host": "127.0.0.1", "port": rs.Port, "timeout_ms": 2000}})
	if len(st.Services) != 1 || len(st.Errors) != 0 {
		t.Fatalf("translation: %+v", st)
	}
	svc := st.Services[0]
	k := harness.Start(t, harness.Options{Binary: pluginBin})
	// Only set_target can reach the instance: the service's own host is
	// the Kong upstream, which the harness does not have here.
	k.AddService(harness.Service{Name: svc.Name, Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	rt := svc.Routes[0]
	if _, err := k.AddRoute(harness.Route{Name: rt.Name, Service: svc.Name, Hosts: rt.Hosts, Paths: rt.Paths,
		StripPath: &rt.StripPath, PreserveHost: rt.PreserveHost}); err != nil {
		t.Fatal(err)
	}
	if !rt.PreserveHost {
		t.Fatalf("the translator's route no longer preserves the Host: %+v", rt)
	}
	for _, p := range svc.Plugins {
		if p.Name != translator.PluginRegistry {
			continue
		}
		if _, err := k.AddPlugin(harness.PluginConfig{Service: svc.Name, Config: p.Config}); err != nil {
			t.Fatalf("plugin config %v refused: %v", p.Config, err)
		}
	}
	c := &http.Client{Timeout: 20 * time.Second}
	// With a port too: Kong's router matches the host without it and
	// preserves the header as sent. (An upper-case Host is not routed to
	// the route at all: Kong compares hosts as sent, fastpath-facts (f).)
	for _, h := range []string{"api.example.com", "api.example.com:8000"} {
		req, _ := http.NewRequest("GET", k.URL()+"/orders/1", nil)
		req.Host = h
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		mu.Lock()
		got := append([]string(nil), hosts...)
		mu.Unlock()
		if resp.StatusCode != 200 || len(got) == 0 || got[len(got)-1] != h {
			t.Fatalf("Host %q: status %d, the instance saw Hosts %v\n%s", h, resp.StatusCode, got, k.Logs())
		}
	}
}
