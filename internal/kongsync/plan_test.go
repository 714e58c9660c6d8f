package kongsync

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Plans are values: these tests read them without any HTTP.

func stateOf(t *testing.T, backends map[string]string) translator.State {
	t.Helper()
	var in []translator.RouteInput
	for path, backend := range backends {
		r := registry.Route{Host: "plan.example.com", Path: path, Backend: backend}
		in = append(in, translator.RouteInput{Route: r, Service: registry.ServiceName(r.Host, r.Path)})
	}
	st := translator.Translate(in, translator.Options{})
	if len(st.Errors) > 0 {
		t.Fatalf("translate: %+v", st.Errors)
	}
	return st
}

// asKong is what Kong would list after accepting want: every entity, every
// upstream's targets listed.
func asKong(want desired) actual {
	have := actual{listed: map[string]bool{}}
	for k := range want.byKind {
		have.byKind[k] = map[string]entity{}
		for id, e := range want.byKind[k] {
			have.byKind[k][id] = e
		}
	}
	for uid := range want.byKind[kindUpstream] {
		have.listed[uid] = true
	}
	return have
}

// describe lists a plan's ops in execution order, one phase per line.
func describe(p plan) string {
	var lines []string
	for _, phase := range p.phases() {
		seen := map[string]bool{}
		var parts []string
		for _, o := range phase {
			s := o.act.String() + " " + o.e.kind().String()
			if !seen[s] {
				seen[s] = true
				parts = append(parts, s)
			}
		}
		sort.Strings(parts)
		lines = append(lines, strings.Join(parts, ", "))
	}
	return strings.Join(lines, "\n")
}

func TestPlanCreatesInDependencyOrder(t *testing.T) {
	want := newDesired(stateOf(t, map[string]string{"/a": "http://a:80"}))
	// The upstream is new in Kong: its (empty) targets count as listed.
	listed := map[string]bool{}
	for uid := range want.byKind[kindUpstream] {
		listed[uid] = true
	}
	p := planFull(want, actual{listed: listed})
	got := describe(p)
	wantOrder := "create services, create upstreams\ncreate routes, create targets\ncreate plugins"
	if got != wantOrder {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, wantOrder)
	}
	if r := p.result(); r.Created != 5 || r.Updated+r.Deleted+r.Unchanged != 0 {
		t.Fatalf("counts: %+v", r)
	}
}

func TestPlanNoOpWhenEqual(t *testing.T) {
	want := newDesired(stateOf(t, map[string]string{"/a": "http://a:80", "/b": "http://b:80"}))
	p := planFull(want, asKong(want))
	if got := describe(p); got != "" {
		t.Fatalf("plan against an equal Kong is not empty:\n%s", got)
	}
	if r := p.result(); r.Unchanged != 10 || r.Changes() != 0 {
		t.Fatalf("counts: %+v", r)
	}
	// What Kong adds (defaults, other fields) is not drift: a Kong entity
	// decoded from JSON with extra config keys and float numbers.
	have := asKong(want)
	for id, e := range have.byKind[kindPlugin] {
		pl := e.(plugin)
		cfg := map[string]any{"kong_default": true}
		for k, v := range pl.Config {
			cfg[k] = jsonShaped(t, v)
		}
		pl.Config = cfg
		have.byKind[kindPlugin][id] = pl
	}
	if got := describe(planFull(want, have)); got != "" {
		t.Fatalf("kong defaults seen as drift:\n%s", got)
	}
}

// jsonShaped is v as encoding/json decodes it.
func jsonShaped(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPlanUpdatesDriftAndDeletesInReverseOrder(t *testing.T) {
	old := newDesired(stateOf(t, map[string]string{"/a": "http://a:80", "/gone": "http://g:80"}))
	want := newDesired(stateOf(t, map[string]string{"/a": "http://a:80"}))
	have := asKong(old)
	// Someone edited our route in Kong.
	for id, e := range have.byKind[kindRoute] {
		r := e.(route)
		if r.Paths[0] == "/a" {
			r.StripPath = !r.StripPath
			have.byKind[kindRoute][id] = r
		}
	}
	p := planFull(want, have)
	got := describe(p)
	wantPlan := "delete plugins\ndelete routes, delete targets\ndelete services, delete upstreams\nupdate routes"
	if got != wantPlan {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, wantPlan)
	}
	if r := p.result(); r.Deleted != 5 || r.Updated != 1 || r.Unchanged != 4 {
		t.Fatalf("counts: %+v", r)
	}
}

func TestPlanKeepsEntitiesOfUntranslatableRoutes(t *testing.T) {
	old := newDesired(stateOf(t, map[string]string{"/a": "http://a:80"}))
	st := translator.State{Errors: []translator.RouteError{{Host: "plan.example.com", Path: "/a", Error: "bug"}}}
	if got := describe(planFull(newDesired(st), asKong(old))); got != "" {
		t.Fatalf("entities of an untranslatable route planned:\n%s", got)
	}
}

func TestPlanChangesFromWhatWasApplied(t *testing.T) {
	v1 := newDesired(stateOf(t, map[string]string{"/a": "http://a:80", "/b": "http://b:80"}))
	known := applied{}
	for k, h := range v1.hashes() {
		e, _ := v1.get(k.k, k.id)
		known[k] = appliedEntry{hash: h, parent: e.parent()}
	}
	if got := describe(planChanges(v1, known, v1.hashes())); got != "" {
		t.Fatalf("nothing changed, yet:\n%s", got)
	}
	v2 := newDesired(stateOf(t, map[string]string{"/a": "http://a2:80"}))
	p := planChanges(v2, known, v2.hashes())
	got := describe(p)
	// /b's five entities go; /a's target address changed (a new target
	// id) and so did its upstream's host header.
	wantPlan := "delete plugins\ndelete routes, delete targets\ndelete services, delete upstreams\n" +
		"update upstreams\ncreate targets"
	if got != wantPlan {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, wantPlan)
	}
	for _, o := range p.deletes[levelOf[kindTarget]] {
		if o.e.kind() == kindTarget && o.e.parent() == "" {
			t.Fatalf("target delete without its upstream: %+v", o.e)
		}
	}
	if r := p.result(); r.Deleted != 6 || r.Updated != 1 || r.Created != 1 || r.Unchanged != 3 {
		t.Fatalf("counts: %+v", r)
	}
}
