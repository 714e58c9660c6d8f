package kongsync

import (
	"encoding/json"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// kongPriority is a port of get_priority, the HTTP-route rank of Kong's
// default router flavor traditional_compatible (3.4.2 kong/router/compat.lua,
// 3.9.3 kong/router/transform.lua): the higher value is tried first. route
// is a route as Kong stores it, JSON-decoded (null: nil; [] or {}: an empty
// []any or map). Like Kong, it is given routes whose paths all have one
// length (Kong splits the others by path length first: splitByPathLength).
// Test-only: the realkong builds here run router_flavor traditional (the ATC
// router is stubbed), so no real Kong here checks this ranking.
func kongPriority(route map[string]any) uint64 {
	const (
		plainHostOnlyBit = uint64(1) << 60
		regexURLBit      = uint64(1) << 51
		maxHeaderCount   = 255
	)
	var weight, headers uint64
	for _, f := range []string{"methods", "hosts"} {
		if !luaEmpty(route[f]) {
			weight++
		}
	}
	if h, ok := route["headers"].(map[string]any); ok && len(h) > 0 {
		weight++
		headers = min(uint64(len(h)), maxHeaderCount)
	}
	if !luaEmpty(route["snis"]) {
		weight++
	}
	// type(route.hosts) == "table": true for [] as much as for a list.
	plainHostOnly := false
	if hosts, ok := route["hosts"].([]any); ok {
		plainHostOnly = true
		for _, h := range hosts {
			if s, _ := h.(string); containsStar(s) {
				plainHostOnly = false
			}
		}
	} else if _, ok := route["hosts"].(map[string]any); ok {
		plainHostOnly = true // cjson's {}: a table too
	}
	var uriLength uint64
	regexURL := false
	if paths, ok := route["paths"].([]any); ok && len(paths) > 0 {
		weight++
		p, _ := paths[0].(string)
		if len(p) > 0 && p[0] == '~' {
			regexURL = true
		} else {
			uriLength = uint64(len(p))
		}
	}
	prio := weight<<61 | headers<<52 | uriLength&0x7FFFF
	if plainHostOnly {
		prio |= plainHostOnlyBit
	}
	if regexURL {
		rp, _ := route["regex_priority"].(float64)
		prio |= regexURLBit | uint64(rp)<<19
	}
	return prio
}

// luaEmpty is atc.is_empty_field: nil, ngx.null or an empty table.
func luaEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

// splitByPathLength is Kong's split of a route whose paths differ in
// length into one route per length (compat.lua split_routes_and_services_by_path).
func splitByPathLength(route map[string]any) []map[string]any {
	paths, _ := route["paths"].([]any)
	if len(paths) < 2 {
		return []map[string]any{route}
	}
	var out []map[string]any
	byLen := map[int]int{}
	for _, p := range paths {
		s, _ := p.(string)
		n := len(s)
		if s != "" && s[0] == '~' {
			n = -1
		}
		i, ok := byLen[n]
		if !ok {
			r := make(map[string]any, len(route))
			for k, v := range route {
				r[k] = v
			}
			r["paths"] = []any{}
			out, i = append(out, r), len(out)
			byLen[n] = i
		}
		out[i]["paths"] = append(out[i]["paths"].([]any), p)
	}
	return out
}

func decodeRoute(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

// ourCatchAll is the catch-all route as the sync writes it and Kong stores
// it: a key not sent is null in Kong (real Kong 3.4.2: POST without hosts,
// GET gives "hosts": null; hosts [] is stored and given back as []).
func ourCatchAll(t *testing.T) map[string]any {
	t.Helper()
	svc, _ := translator.FastPath(translator.Options{FastPath: true})
	b, err := json.Marshal(newRoute(svc.Routes[0], svc.ID))
	if err != nil {
		t.Fatal(err)
	}
	return decodeRoute(t, string(b))
}

// The catch-all ranks below every route that should win over it in Kong's
// default router (traditional_compatible) and above the methods-only,
// SNI-only and wildcard-hosts-only routes whose traffic it would take (the shadow check keeps it
// out then: catchesAll). Before the catch-all was sent without hosts it was
// stored with hosts [], which sets the plain-host-only bit: it outranked
// paths-only /x and headers-only routes.
func TestCatchAllRankTraditionalCompatible(t *testing.T) {
	ours := kongPriority(ourCatchAll(t))
	for _, c := range []struct {
		route string
		above bool // the route outranks ours
	}{
		{`{"hosts":["a.example"]}`, true},
		{`{"paths":["/x"]}`, true},
		{`{"paths":["/x"],"hosts":null}`, true},
		{`{"headers":{"x-a":["1"]}}`, true},
		{`{"paths":["~/.*"]}`, true},
		{`{"hosts":["api.example.com"],"paths":["/v1"],"protocols":["http","https"]}`, true}, // a go-proxy route
		{`{"hosts":["api.example.com"],"paths":["/"],"protocols":["http","https"]}`, true},
		{`{"methods":["GET"],"paths":["/"]}`, true},
		{`{"methods":["GET"],"snis":["a.example"],"protocols":["https"]}`, true},
		{`{"methods":["GET"],"hosts":[]}`, true}, // [] sets the bit
		{`{"methods":["GET"]}`, false},
		{`{"snis":["a.example"],"protocols":["https"]}`, false},
		{`{"hosts":["*.example"]}`, false}, // a wildcard host: no plain-host bit
		{`{"hosts":["a.example","*.example"]}`, false},
		{`{"hosts":["*.example"],"methods":["GET"]}`, true},
	} {
		theirs := kongPriority(decodeRoute(t, c.route))
		if got := theirs > ours; got != c.above {
			t.Errorf("%s: priority %#x vs ours %#x: outranks ours %v, want %v", c.route, theirs, ours, got, c.above)
		}
	}
	if tie := kongPriority(decodeRoute(t, `{"paths":["/"]}`)); tie != ours {
		t.Errorf("paths [/] alone: %#x, ours %#x: want a tie", tie, ours)
	}
}

// catchesAll keeps ours out exactly when the port says an operator route
// without host or header conditions ties with ours or loses to it (ours
// would take its traffic), or catches every request ours would.
func TestCatchesAllAgreesWithPriority(t *testing.T) {
	ours := kongPriority(ourCatchAll(t))
	for _, s := range []string{
		`{"name":"a","paths":["/"]}`,
		`{"name":"a","methods":["PUT"]}`,
		`{"name":"a","snis":["a.example"],"protocols":["https"]}`,
		`{"name":"a","methods":["PUT"],"snis":["a.example"],"protocols":["https"]}`,
		`{"name":"a","paths":["/"],"methods":["GET"]}`,
		`{"name":"a","paths":["/"],"snis":["a.example"],"protocols":["https"]}`,
		`{"name":"a","paths":["/x","/"]}`,
		`{"name":"a","hosts":["a.example"]}`,
		`{"name":"a","hosts":["*.example"]}`,
		`{"name":"a","hosts":["a.example","*.example"]}`,
		`{"name":"a","hosts":["*.example"],"methods":["GET"]}`,
		`{"name":"a","headers":{"x":["1"]}}`,
		`{"name":"a","paths":["/a"]}`,
		`{"name":"a","paths":["~/.*"]}`,
	} {
		r := decodeRoute(t, s)
		want := false
		for _, sub := range splitByPathLength(r) {
			want = want || kongPriority(sub) <= ours
		}
		var ca catchAll
		if err := json.Unmarshal([]byte(s), &ca); err != nil {
			t.Fatal(err)
		}
		if got := ca.catchesAll(); got != want {
			t.Errorf("%s: catchesAll %v, the port says %v", s, got, want)
		}
	}
}
