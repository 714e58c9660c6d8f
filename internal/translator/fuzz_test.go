package translator

import (
	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// kongTag is Kong 3.9's tag rule (typedefs.lua validate_tag), written
// independently of validTag: valid UTF-8 whose bytes are space, printable
// ASCII but ',' and '/', or 128-244.
func kongTag(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == ' ' || c >= 33 && c <= 43 || c == 45 || c == 46 || c >= 48 && c <= 126 || c >= 128 && c <= 244) {
			return false
		}
	}
	return true
}

// FuzzTranslate: whatever a stored route holds, Translate does not panic,
// accounts for every route (translated or in Errors), is deterministic, and
// emits only what Kong accepts: names, tags, ports, timeouts, retries,
// weights in range, and service-registry plugin configs that pass the
// plugin's own schema (kong/schemas/service-registry.json, the -dump).
func FuzzTranslate(f *testing.F) {
	schema := snapshotSchema(f)
	f.Add("api.example.com", "/v1", "http://api-v1:8080", ``, "10.0.0.1:80", 5)
	f.Add("*.example.com", "/a,b/c%2F", "wss://ws.example.com/sock", `{"timeout":"45s","headers":{"X-A":"1"},"rate_limit":{"enabled":true,"requests_per_min":100,"per_ip":true},"circuit_breaker":{"enabled":true,"failure_threshold":5,"timeout":"30s"},"retry":{"enabled":true,"max_attempts":3},"health_check_path":"/h","health_check_interval":"10s"}`, "[::1]:9000", 0)
	f.Add("h", "/", "https://[::1]:8443/base/", `{"retry":{"enabled":true,"max_attempts":40000}}`, "", -3)
	f.Add("h", "/x", "ftp://h", `{"timeout":"6o"}`, "h:1", 70000)
	f.Add("\xff", "/\x00", "http://h:0", `[]`, "x", 1)
	f.Fuzz(func(t *testing.T, host, path, backend, options, addr string, weight int) {
		route := registry.Route{Host: host, Path: path, Backend: backend}
		if options != "" {
			route.Options = json.RawMessage(options)
		}
		in := []RouteInput{
			{Route: route, Service: registry.ServiceName(host, path), Instances: []registry.Instance{{ID: "i", Address: addr, Weight: weight}}},
			// A fixed second route: its entities must never collide with the first's.
			{Route: registry.Route{Host: "other.example.com", Path: "/o", Backend: "http://o:1"}, Service: registry.ServiceName("other.example.com", "/o")},
		}
		opts := Options{Redis: map[string]any{"host": "127.0.0.1", "port": 6379}}
		st := Translate(in, opts)
		if len(st.Services)+len(st.Errors) != len(in) || len(st.Services) != len(st.Upstreams) {
			t.Fatalf("%d routes in, %d services, %d upstreams, %d errors", len(in), len(st.Services), len(st.Upstreams), len(st.Errors))
		}
		// Deterministic, error texts included (input 95fd71dfc05d0869 once
		// named a random bad header).
		a, _ := json.Marshal(st)
		b, _ := json.Marshal(Translate(in, opts))
		if string(a) != string(b) {
			t.Fatal("Translate is not deterministic")
		}
		ids := map[string]string{}
		seen := func(kind, id string) {
			if prev, dup := ids[id]; dup {
				t.Fatalf("id %s used by %s and %s", id, prev, kind)
			}
			ids[id] = kind
		}
		names := map[string]bool{}
		tags := func(ts []string) {
			for _, tg := range ts {
				if !kongTag(tg) {
					t.Fatalf("tag %q would be refused by Kong", tg)
				}
			}
		}
		for _, s := range st.Services {
			seen("service", s.ID)
			if names[s.Name] || !validName(s.Name) {
				t.Fatalf("service name %q duplicate or invalid", s.Name)
			}
			names[s.Name] = true
			if s.Protocol != "http" && s.Protocol != "https" {
				t.Fatalf("protocol %q", s.Protocol)
			}
			if s.Port < 1 || s.Port > 65535 || s.Retries < 0 || s.Retries > 32767 {
				t.Fatalf("port %d retries %d", s.Port, s.Retries)
			}
			for _, ms := range []int{s.ConnectTimeout, s.ReadTimeout, s.WriteTimeout} {
				if ms < 1 || ms > 2147483646 {
					t.Fatalf("timeout %d ms", ms)
				}
			}
			tags(s.Tags)
			for _, r := range s.Routes {
				seen("route", r.ID)
				tags(r.Tags)
			}
			for _, p := range s.Plugins {
				seen("plugin", p.ID)
				tags(p.Tags)
				if p.Name != PluginRegistry {
					continue
				}
				// Through JSON, as Kong receives it.
				var cfg map[string]any
				raw, _ := json.Marshal(p.Config)
				_ = json.Unmarshal(raw, &cfg)
				if _, errs := schema.Validate(cfg); len(errs) > 0 {
					t.Fatalf("plugin config %s refused by the plugin schema: %v", raw, errs)
				}
			}
		}
		for _, u := range st.Upstreams {
			seen("upstream", u.ID)
			if !strings.HasSuffix(u.Name, ".upstream") || net.ParseIP(u.Name) != nil {
				t.Fatalf("upstream name %q", u.Name)
			}
			tags(u.Tags)
			targets := map[string]bool{}
			for _, tg := range u.Targets {
				seen("target", tg.ID)
				if targets[tg.Target] || tg.Weight < 0 || tg.Weight > 65535 {
					t.Fatalf("target %q weight %d (duplicate: %v)", tg.Target, tg.Weight, targets[tg.Target])
				}
				targets[tg.Target] = true
			}
		}
		if !reflect.DeepEqual(in[1].Instances, []registry.Instance(nil)) {
			t.Fatal("Translate changed its input")
		}
	})
}
