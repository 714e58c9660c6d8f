package kongsync

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// The fast path's catch-all (translator.FastPath) is synced like every
// other entity of ours, with one exception: when an operator's own route
// (without our tag) already catches "/" without hosts, ours would tie with
// it in Kong's router, so ours is not created (or is removed) and Status
// says which route is in the way. The operator's config wins. The same
// holds for an operator route matching on neither headers nor paths and on
// only one of methods, SNIs, wildcard hosts: Kong ranks a paths-only route
// above those (traditional: tests/KONG-NOTES.md; traditional_compatible:
// priority_test.go), so ours would take their traffic.

// Fast path states in Status.FastPath.
const (
	FastPathOn       = "on"
	FastPathOff      = "off"
	FastPathShadowed = "shadowed"
	// FastPathRefused: Kong refuses the catch-all (Status.Refused says
	// why; an older plugin binary without fast_path); its route is not in
	// Kong, so unknown requests keep Kong's own 404.
	FastPathRefused = "refused"
	// FastPathPending: DB mode, the catch-all's plugin is in Kong and its
	// route waits until every Kong worker has the plugin (settle.go).
	FastPathPending = "pending"
)

// wantsFastPath reports whether st holds the catch-all.
func wantsFastPath(st translator.State) bool {
	for _, s := range st.Services {
		if translator.IsFastPath(s.Tags) {
			return true
		}
	}
	return false
}

// withoutFastPath is st without the catch-all's entities (the global
// plugin is not one of them).
func withoutFastPath(st translator.State) translator.State {
	out := translator.State{Errors: st.Errors, Plugins: st.Plugins,
		Services: make([]translator.Service, 0, len(st.Services)), Upstreams: make([]translator.Upstream, 0, len(st.Upstreams))}
	for _, s := range st.Services {
		if !translator.IsFastPath(s.Tags) {
			out.Services = append(out.Services, s)
		}
	}
	for _, u := range st.Upstreams {
		if !translator.IsFastPath(u.Tags) {
			out.Upstreams = append(out.Upstreams, u)
		}
	}
	return out
}

// withoutFastPath drops the catch-all's entities from d (in place).
func (d desired) withoutFastPath() desired {
	for k := range d.byKind {
		for id, e := range d.byKind[k] {
			if translator.IsFastPath(e.tagList()) {
				delete(d.byKind[k], id)
				delete(d.targetSets, id)
				delete(d.targetsOf, id)
			}
		}
	}
	return d
}

// catchAll describes a route as far as "does it catch every request" goes.
// Kong writes an unset list as null (3.4 and 3.9); the fields stay raw so
// that an empty one written as {} (cjson's empty table) is no error.
type catchAll struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Tags      []string        `json:"tags"`
	Protocols []string        `json:"protocols"`
	Paths     json.RawMessage `json:"paths"`
	Hosts     json.RawMessage `json:"hosts"`
	Methods   json.RawMessage `json:"methods"`
	Headers   json.RawMessage `json:"headers"`
	SNIs      json.RawMessage `json:"snis"`
	// Expression is set on routes of Kong's expressions router, whose
	// rank this does not model (and which refuses our paths-based route).
	Expression string `json:"expression"`
}

// catchesAll reports whether r is an operator's HTTP route that our
// catch-all would tie with (no hosts, headers, methods or SNIs, and the
// path "/") or take traffic from: a route without paths or headers and
// with at most one of methods, SNIs, hosts with a wildcard (in Kong's
// default router, traditional_compatible, such a route ranks below ours,
// which has one condition and a path of length 1; two conditions or a
// plain host rank above: priority_test.go's port of Kong's get_priority).
// A route with a plain host, a header or a longer path wins over ours.
func (r catchAll) catchesAll() bool {
	if hasTag(r.Tags, translator.TagManaged) || r.Expression != "" || !r.http() || !emptyJSON(r.Headers) {
		return false
	}
	if emptyJSON(r.Paths) {
		conditions := 0
		for _, f := range []json.RawMessage{r.Methods, r.SNIs, r.Hosts} {
			if !emptyJSON(f) {
				conditions++
			}
		}
		return conditions <= 1 && (emptyJSON(r.Hosts) || wildcardHosts(r.Hosts))
	}
	if !emptyJSON(r.Hosts) || !emptyJSON(r.Methods) || !emptyJSON(r.SNIs) {
		return false
	}
	var paths []string
	if json.Unmarshal(r.Paths, &paths) != nil {
		return false
	}
	for _, p := range paths {
		if p == "/" {
			return true
		}
	}
	return false
}

// wildcardHosts reports whether a hosts list holds a wildcard host, which
// takes away the plain-host rank Kong gives a route's hosts.
func wildcardHosts(raw json.RawMessage) bool {
	var hosts []string
	if json.Unmarshal(raw, &hosts) != nil {
		return false
	}
	for _, h := range hosts {
		if strings.Contains(h, "*") {
			return true
		}
	}
	return false
}

// http reports whether r can match what our catch-all matches: Kong's
// default protocols are http and https; stream routes (tcp, tls, udp)
// never meet ours.
func (r catchAll) http() bool {
	if len(r.Protocols) == 0 {
		return true
	}
	for _, p := range r.Protocols {
		switch p {
		case "http", "https", "grpc", "grpcs":
			return true
		}
	}
	return false
}

// tagList and spot make catchAll the spotter of listAllSpotting: an
// operator's route catching "/" without hosts, named.
func (r catchAll) tagList() []string { return r.Tags }

func (r catchAll) spot() (string, bool) { return r.label(), r.catchesAll() }

func (r catchAll) label() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

func emptyJSON(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", "[]", "{}":
		return true
	}
	return false
}

// declarativeCatchAll finds an operator route catching "/" without hosts
// in a declarative config: top-level routes (as Kong's GET /config writes
// them) or routes nested in services (as an operator's kong.yml does).
func declarativeCatchAll(base map[string]any) string {
	routes := unmanaged(base["routes"])
	for _, s := range unmanaged(base["services"]) {
		if m, ok := s.(map[string]any); ok {
			routes = append(routes, unmanaged(m["routes"])...)
		}
	}
	for _, r := range routes {
		b, err := json.Marshal(r)
		if err != nil {
			continue
		}
		var ca catchAll
		if json.Unmarshal(b, &ca) == nil && ca.catchesAll() {
			return ca.label()
		}
	}
	return ""
}

var fastPathServiceID = translator.ID("service", translator.FastPathName)

// hasFastPath reports whether d holds the catch-all.
func (d desired) hasFastPath() bool {
	_, ok := d.byKind[kindService][fastPathServiceID]
	return ok
}

var fastPathRouteID = translator.ID("route", translator.FastPathName)

// refusedFastPath reports whether Kong refused one of the catch-all's
// entities.
func refusedFastPath(refused []Refusal) bool {
	for _, r := range refused {
		if r.Route == translator.TagFastPath {
			return true
		}
	}
	return false
}

// noteFastPath records the catch-all's state for Status and logs when it
// moves, so an operator's catch-all is logged once, not every reconcile.
func (s *Syncer) noteFastPath(mode string, st translator.State, refused []Refusal) {
	state, shadow := FastPathOff, ""
	if wantsFastPath(st) {
		state = FastPathOn
		if shadow = s.db.shadow; mode == ModeDBLess {
			shadow = s.dbless.shadow
		}
		if shadow != "" {
			state = FastPathShadowed
		}
		if state == FastPathOn && mode == ModeDB && s.db.pending {
			state = FastPathPending
		}
		if refusedFastPath(refused) {
			state = FastPathRefused
		}
	}
	if !s.status.setFastPath(state, shadow) {
		return
	}
	if state == FastPathShadowed {
		s.log.Warn("an operator's kong route catches / without hosts: the fast path's catch-all route is not created "+
			"(it would tie with that route); registrations answer through kong once their own route exists",
			"route", shadow)
		return
	}
	s.log.Info("fast path", "state", state, "route", translator.FastPathName)
}
