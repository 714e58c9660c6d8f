package kongsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// The fast path's catch-all (translator.FastPath) is synced like every
// other entity of ours, with one exception: when an operator's own route
// (without our tag) already catches "/" without hosts, ours would tie with
// it in Kong's router, so ours is not created (or is removed) and Status
// says which route is in the way. The operator's config wins. The same
// holds for an operator route matching on neither hosts, headers nor paths
// (methods, SNIs only): Kong's traditional router ranks a paths-only route
// above those (tests/KONG-NOTES.md), so ours would take their traffic.

// Fast path states in Status.FastPath.
const (
	FastPathOn       = "on"
	FastPathOff      = "off"
	FastPathShadowed = "shadowed"
	// FastPathRefused: Kong refuses the catch-all (Status.Refused says
	// why; an older plugin binary without fast_path); its route is not in
	// Kong, so unknown requests keep Kong's own 404.
	FastPathRefused = "refused"
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

// withoutFastPath is st without the catch-all's entities.
func withoutFastPath(st translator.State) translator.State {
	out := translator.State{Errors: st.Errors,
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
// path "/") or take traffic from (no hosts, headers or paths at all). A
// route with a host, a header or a longer path wins over ours anyway.
func (r catchAll) catchesAll() bool {
	if hasTag(r.Tags, translator.TagManaged) || r.Expression != "" || !r.http() || !emptyJSON(r.Hosts) || !emptyJSON(r.Headers) {
		return false
	}
	if emptyJSON(r.Paths) {
		return true
	}
	if !emptyJSON(r.Methods) || !emptyJSON(r.SNIs) {
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

// listRoutesAll lists every route in Kong (ours and the operator's, one
// paged list like the tagged one it replaces) and returns ours, and the
// first operator route that catches "/" without hosts ("" when none).
func listRoutesAll(ctx context.Context, c *client) ([]entity, string, error) {
	raws, err := list[json.RawMessage](ctx, c, "/routes", "")
	if err != nil {
		return nil, "", err
	}
	var ours []entity
	var shadow string
	for _, raw := range raws {
		var ca catchAll
		if err := json.Unmarshal(raw, &ca); err != nil {
			return nil, "", fmt.Errorf("reading a kong route: %w", err)
		}
		if !hasTag(ca.Tags, translator.TagManaged) {
			if shadow == "" && ca.catchesAll() {
				shadow = ca.label()
			}
			continue
		}
		var r route
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, "", fmt.Errorf("reading kong route %s: %w", ca.label(), err)
		}
		ours = append(ours, r)
	}
	return ours, shadow, nil
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
		for _, r := range refused {
			if r.Route == translator.TagFastPath {
				state = FastPathRefused
			}
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
