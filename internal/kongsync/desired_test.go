package kongsync

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// The hand-written builders must give what a JSON round trip gives.
func TestBuildersMatchJSON(t *testing.T) {
	st := translator.Translate([]translator.RouteInput{{
		Route:   routeFixture(),
		Service: "sr-a.example.com_x",
	}}, translator.Options{Redis: map[string]any{"host": "r", "port": 6380}})
	if len(st.Services) != 1 {
		t.Fatalf("%+v", st)
	}
	roundTrip := func(v any, drop ...string) map[string]any {
		b, _ := json.Marshal(v)
		var m map[string]any
		json.Unmarshal(b, &m)
		for _, d := range drop {
			delete(m, d)
		}
		return m
	}
	s := st.Services[0]
	if got, want := serviceMap(s), roundTrip(s, "routes", "plugins"); !reflect.DeepEqual(got, want) {
		t.Fatalf("service\n%v\n%v", got, want)
	}
	if got, want := routeMap(s.Routes[0]), roundTrip(s.Routes[0]); !reflect.DeepEqual(got, want) {
		t.Fatalf("route\n%v\n%v", got, want)
	}
	for _, p := range s.Plugins {
		got, _ := pluginMap(p)
		if want := roundTrip(p); !reflect.DeepEqual(got, want) {
			t.Fatalf("plugin\n%v\n%v", got, want)
		}
	}
	u := st.Upstreams[0]
	got, _ := upstreamMap(u)
	if want := roundTrip(u, "targets"); !reflect.DeepEqual(got, want) {
		t.Fatalf("upstream\n%v\n%v", got, want)
	}
	if got, want := targetMap(u.Targets[0]), roundTrip(u.Targets[0]); !reflect.DeepEqual(got, want) {
		t.Fatalf("target\n%v\n%v", got, want)
	}
}

func routeFixture() (r registry.Route) {
	r.Host, r.Path, r.Backend = "a.example.com", "/x", "https://b:8443/base"
	r.Options = []byte(`{"timeout":"5s","headers":{"X-A":"1"},"rate_limit":{"enabled":true,"requests_per_min":10},"health_check_path":"/h","retry":{"enabled":true,"max_attempts":2}}`)
	return r
}
