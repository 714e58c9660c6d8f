package translator

import (
	"fmt"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

func TestUpstreamNamesStayDistinct(t *testing.T) {
	names := []string{
		"sr-api.example.com_v2", "sr-api.example.com_V2", "sr-a.com_-0123456789ab", "sr-a.com_~0123456789ab",
		"sr--.example.com_~5d0c2f3a9b1e", "sr-x.com_a-", "sr-x.com_a",
	}
	seen := map[string]string{}
	for _, n := range names {
		u := upstreamName(n)
		if other, dup := seen[u]; dup {
			t.Fatalf("%s and %s share upstream %s", n, other, u)
		}
		seen[u] = n
		if !validName(u) {
			t.Fatalf("%s: invalid name %s", n, u)
		}
		for _, l := range splitLabels(u) {
			if l == "" || l[len(l)-1] == '-' {
				t.Fatalf("%s: bad label in %s", n, u)
			}
		}
	}
	if got := upstreamName("sr-api.example.com_v2"); got != "sr-api.example.com_v2.upstream" {
		t.Fatalf("readable names stay readable: %s", got)
	}
}

func splitLabels(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// Issue 13 defect 2: a backend host Kong refuses ("Invalid target",
// "host_header: invalid value") makes that one route a visible error instead
// of an upstream every reconcile retries; an instance address Kong would
// refuse (written around the store) is left out of the targets; the other
// routes are untouched.
func TestTranslateRefusesHostsKongRefuses(t *testing.T) {
	in := []RouteInput{{Route: registry.Route{Host: "good.test", Path: "/a", Backend: "http://10.0.0.1:80"}, Service: "sr-good.test_a",
		Instances: []registry.Instance{{ID: "bad", Address: "999.1.1.1:80", Weight: 5}, {ID: "ok", Address: "10.0.0.2:80", Weight: 5}}}}
	for i, b := range []string{"http://2852039166/", "http://999.1.1.1/", "http://1.2.3/"} {
		p := fmt.Sprintf("/b%d", i)
		in = append(in, RouteInput{Route: registry.Route{Host: "bad.test", Path: p, Backend: b}, Service: "sr-bad.test_b" + p[2:]})
	}
	st := Translate(in, Options{})
	if len(st.Errors) != 3 || len(st.Services) != 1 {
		t.Fatalf("errors %v, services %d: want 3 errors and the good route", st.Errors, len(st.Services))
	}
	var got []string
	for _, tg := range st.Upstreams[0].Targets {
		got = append(got, tg.Target)
	}
	if fmt.Sprint(got) != "[10.0.0.1:80 10.0.0.2:80]" {
		t.Fatalf("targets %v", got)
	}
}
