package kongsync

import (
	"encoding/json"
	"testing"
)

// Which operator routes keep our catch-all out: those it would tie with
// (paths ["/"] alone) or take traffic from (no hosts, headers or paths:
// Kong's traditional router ranks a paths-only route above a methods- or
// SNI-only one; tests/KONG-NOTES.md). Kong writes unset lists as null, and
// an empty one may come as {} (cjson).
func TestCatchesAll(t *testing.T) {
	for _, c := range []struct {
		route string
		want  bool
	}{
		{`{"name":"a","paths":["/"]}`, true},
		{`{"name":"a","paths":["/"],"hosts":null,"methods":null,"headers":null,"snis":null}`, true},
		{`{"name":"a","paths":["/x","/"],"hosts":{},"headers":{}}`, true},
		{`{"name":"a","methods":["PUT"]}`, true},
		{`{"name":"a","snis":["a.example"],"protocols":["https"]}`, true},
		{`{"name":"a","paths":["/"],"methods":["GET"]}`, false},
		{`{"name":"a","paths":["/"],"hosts":["a.example"]}`, false},
		{`{"name":"a","paths":["/"],"headers":{"x":["1"]}}`, false},
		{`{"name":"a","paths":["/a"]}`, false},
		{`{"name":"a","paths":["~/.*"]}`, false},
		{`{"name":"a","paths":["/"],"tags":["managed-by:service-registry","sr-fast-path"]}`, false},
		{`{"name":"a","protocols":["tcp"],"destinations":[{"port":9000}]}`, false},
		{`{"name":"a","protocols":["grpc"],"paths":["/"]}`, true},
		{`{"name":"a","expression":"http.path ^= \"/\""}`, false},
	} {
		var r catchAll
		if err := json.Unmarshal([]byte(c.route), &r); err != nil {
			t.Fatalf("%s: %v", c.route, err)
		}
		if got := r.catchesAll(); got != c.want {
			t.Errorf("%s: catchesAll %v, want %v", c.route, got, c.want)
		}
	}
}

// declarativeCatchAll finds the operator's route nested in a service (an
// operator's kong.yml) or flat (Kong's GET /config), never one of ours.
func TestDeclarativeCatchAll(t *testing.T) {
	nested, _ := parseBase([]byte("services:\n- name: s\n  routes:\n  - name: root\n    paths: [/]\n"))
	flat, _ := parseBase([]byte("routes:\n- id: 1b0c\n  paths: [/]\n  service: s1\n"))
	ours, _ := parseBase([]byte("routes:\n- name: sr-fast-path\n  paths: [/]\n  tags: [managed-by:service-registry, sr-fast-path]\n"))
	for _, c := range []struct {
		base map[string]any
		want string
	}{{nested, "root"}, {flat, "1b0c"}, {ours, ""}, {map[string]any{}, ""}} {
		if got := declarativeCatchAll(c.base); got != c.want {
			t.Errorf("%v: %q, want %q", c.base, got, c.want)
		}
	}
}
