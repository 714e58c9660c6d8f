package kongsync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// entity is one desired Kong entity, flattened to the Admin API's JSON shape
// with its foreign keys set.
type entity struct {
	kind   string         // services routes plugins upstreams targets
	id     string         // deterministic (translator.ID)
	name   string         // name, or target address for targets
	parent string         // upstream id for targets
	body   map[string]any // JSON-shaped (float64 numbers)
}

// flat is the desired state by kind and id.
type flat struct {
	byKind map[string]map[string]entity
	// targetSets holds a hash of each upstream's desired targets, so a
	// reconcile lists an upstream's targets only when they may differ.
	targetSets map[string]string
	// protect holds the tag pairs of routes the translator could not
	// translate: their entities stay as they are in Kong rather than being
	// deleted for a translation bug.
	protect map[string]bool
}

func tagPair(tags []any) string {
	var h, p string
	for _, t := range tags {
		s, _ := t.(string)
		switch {
		case len(s) > len(translator.TagHostPrefix) && s[:len(translator.TagHostPrefix)] == translator.TagHostPrefix:
			h = s
		case len(s) > len(translator.TagPathPrefix) && s[:len(translator.TagPathPrefix)] == translator.TagPathPrefix:
			p = s
		}
	}
	return h + "|" + p
}

func (f flat) protected(e map[string]any) bool {
	if len(f.protect) == 0 {
		return false
	}
	tags, _ := e["tags"].([]any)
	return f.protect[tagPair(tags)]
}

// The builders below produce exactly what encoding/json would give for the
// translator's types after a round trip (float64 numbers, []any lists),
// without reflection: a 10 000-route reconcile flattens 50 000 entities.

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// jsonValue normalises free-form values (plugin configs, healthchecks) to
// decoded-JSON shapes.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case []string:
		return strs(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	}
	// Anything else: let encoding/json decide.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

func serviceMap(s translator.Service) map[string]any {
	m := map[string]any{
		"id": s.ID, "name": s.Name, "protocol": s.Protocol, "host": s.Host, "port": float64(s.Port),
		"connect_timeout": float64(s.ConnectTimeout), "read_timeout": float64(s.ReadTimeout),
		"write_timeout": float64(s.WriteTimeout), "retries": float64(s.Retries), "tags": strs(s.Tags),
	}
	if s.Path != "" {
		m["path"] = s.Path
	}
	return m
}

func routeMap(r translator.Route) map[string]any {
	return map[string]any{
		"id": r.ID, "name": r.Name, "protocols": strs(r.Protocols), "hosts": strs(r.Hosts), "paths": strs(r.Paths),
		"strip_path": r.StripPath, "preserve_host": r.PreserveHost, "tags": strs(r.Tags),
	}
}

func pluginMap(p translator.Plugin) (map[string]any, error) {
	cfg, err := jsonValue(p.Config)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	return map[string]any{"id": p.ID, "name": p.Name, "enabled": p.Enabled, "config": cfg, "tags": strs(p.Tags)}, nil
}

func upstreamMap(u translator.Upstream) (map[string]any, error) {
	m := map[string]any{"id": u.ID, "name": u.Name, "algorithm": u.Algorithm, "tags": strs(u.Tags)}
	if u.HostHeader != "" {
		m["host_header"] = u.HostHeader
	}
	if len(u.Healthchecks) > 0 {
		hc, err := jsonValue(u.Healthchecks)
		if err != nil {
			return nil, err
		}
		m["healthchecks"] = hc
	}
	return m, nil
}

func targetMap(t translator.Target) map[string]any {
	return map[string]any{"id": t.ID, "target": t.Target, "weight": float64(t.Weight), "tags": strs(t.Tags)}
}

func flatten(st translator.State) (flat, error) {
	f := flat{byKind: map[string]map[string]entity{}, targetSets: map[string]string{}, protect: map[string]bool{}}
	for _, e := range st.Errors {
		f.protect[tagPair(strs(translator.Tags(e.Host, e.Path)))] = true
	}
	for _, k := range []string{"services", "routes", "plugins", "upstreams", "targets"} {
		f.byKind[k] = map[string]entity{}
	}
	for _, s := range st.Services {
		body := serviceMap(s)
		f.byKind["services"][s.ID] = entity{kind: "services", id: s.ID, name: s.Name, body: body}
		for _, r := range s.Routes {
			rb := routeMap(r)
			rb["service"] = map[string]any{"id": s.ID}
			f.byKind["routes"][r.ID] = entity{kind: "routes", id: r.ID, name: r.Name, body: rb}
		}
		for _, p := range s.Plugins {
			pb, err := pluginMap(p)
			if err != nil {
				return flat{}, fmt.Errorf("encoding plugin %s: %w", p.Name, err)
			}
			pb["service"] = map[string]any{"id": s.ID}
			f.byKind["plugins"][p.ID] = entity{kind: "plugins", id: p.ID, name: p.Name, body: pb}
		}
	}
	for _, u := range st.Upstreams {
		body, err := upstreamMap(u)
		if err != nil {
			return flat{}, fmt.Errorf("encoding upstream %s: %w", u.Name, err)
		}
		f.byKind["upstreams"][u.ID] = entity{kind: "upstreams", id: u.ID, name: u.Name, body: body}
		h := sha256.New()
		for _, t := range u.Targets {
			tb := targetMap(t)
			tb["upstream"] = map[string]any{"id": u.ID}
			f.byKind["targets"][t.ID] = entity{kind: "targets", id: t.ID, name: t.Target, parent: u.ID, body: tb}
			fmt.Fprintf(h, "%s=%d;", t.Target, t.Weight)
		}
		f.targetSets[u.ID] = hex.EncodeToString(h.Sum(nil))
	}
	return f, nil
}

// subsetEqual reports whether every field of want has the same value in
// have. Kong fills defaults and extra fields we never set; those are not
// drift. Arrays of scalars compare as sets (Kong keeps sets unordered).
func subsetEqual(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if k == "id" || k == "created_at" || k == "updated_at" {
				continue
			}
			if !subsetEqual(wv, h[k]) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		if len(w) != len(h) {
			return false
		}
		ws, hs := scalarKeys(w), scalarKeys(h)
		if ws != nil && hs != nil {
			sort.Strings(ws)
			sort.Strings(hs)
			for i := range ws {
				if ws[i] != hs[i] {
					return false
				}
			}
			return true
		}
		for i := range w {
			if !subsetEqual(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		return want == have
	}
}

func scalarKeys(a []any) []string {
	out := make([]string, len(a))
	for i, v := range a {
		switch v.(type) {
		case map[string]any, []any:
			return nil
		}
		out[i] = fmt.Sprintf("%T:%v", v, v)
	}
	return out
}
