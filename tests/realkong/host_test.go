package realkong

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// issue 13 defect 1, in the real Kong: kong.service.set_target makes the
// instance the upstream Host (pdk/service.lua: ngx.var.upstream_host =
// host), even on a route with preserve_host; the plugin's preserve_host
// (what adminsvc writes from the route) gives the client's Host back.
// Kong's own behaviour is the reference: the same route without the
// plugin, and with registry = kong, pass the client's Host.
func TestPreserveHost(t *testing.T) {
	eachKong(t, modeDBLess, func(t *testing.T, k *kong) {
		e := newEnv(t, k, envOptions{})
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Host)
		}))
		t.Cleanup(echo.Close)
		addr := echo.Listener.Addr().String()
		host, _, _ := net.SplitHostPort(addr)
		port := echo.Listener.Addr().(*net.TCPAddr).Port
		if _, err := e.store.PutInstance(e.ctx(), "hosts", registry.Instance{ID: "echo", Address: addr, Weight: 1}); err != nil {
			t.Fatal(err)
		}
		redis := e.cfg["redis"]
		plugin := func(cfg map[string]any) []map[string]any {
			if cfg == nil {
				return nil
			}
			return []map[string]any{{"name": "service-registry", "config": cfg}}
		}
		routes := []struct {
			path         string
			preserveHost bool
			cfg          map[string]any
			want         string // "" → the client's Host
		}{
			{"/kong-only", true, nil, ""},
			{"/registry-kong", true, map[string]any{"registry": "kong"}, ""},
			{"/redis-preserve", true, map[string]any{"registry": "redis", "service": "hosts", "redis": redis, "preserve_host": true}, ""},
			// Kong's set_target: the instance host, whatever the route says.
			{"/redis-target", true, map[string]any{"registry": "redis", "service": "hosts", "redis": redis}, host},
			{"/redis-no-preserve", false, map[string]any{"registry": "redis", "service": "hosts", "redis": redis}, host},
		}
		e.extraServices = nil
		for i, r := range routes {
			name := "ph" + r.path[1:]
			e.extraServices = append(e.extraServices, map[string]any{
				"name": name, "host": host, "port": port, "retries": 0,
				"routes":  []map[string]any{{"name": name, "paths": []string{r.path}, "preserve_host": r.preserveHost}},
				"plugins": plugin(routes[i].cfg),
			})
		}
		if err := e.push(); err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			for _, client := range []string{"client.example", "Client.Example:8443"} {
				status, body, _ := getURL(t, e.http, e.kong.proxy+r.path, client)
				want := r.want
				if want == "" {
					want = client
				}
				if status != 200 || body != want {
					t.Errorf("%s (preserve_host %v, plugin %v), Host %q: %d, upstream Host %q, want %q",
						r.path, r.preserveHost, r.cfg != nil, client, status, body, want)
				}
			}
		}
	})
}
