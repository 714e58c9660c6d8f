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
}

func toJSONMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func flatten(st translator.State) (flat, error) {
	f := flat{byKind: map[string]map[string]entity{}, targetSets: map[string]string{}}
	for _, k := range []string{"services", "routes", "plugins", "upstreams", "targets"} {
		f.byKind[k] = map[string]entity{}
	}
	for _, s := range st.Services {
		body, err := toJSONMap(s)
		if err != nil {
			return flat{}, fmt.Errorf("encoding service %s: %w", s.Name, err)
		}
		delete(body, "routes")
		delete(body, "plugins")
		f.byKind["services"][s.ID] = entity{kind: "services", id: s.ID, name: s.Name, body: body}
		for _, r := range s.Routes {
			rb, err := toJSONMap(r)
			if err != nil {
				return flat{}, fmt.Errorf("encoding route %s: %w", r.Name, err)
			}
			rb["service"] = map[string]any{"id": s.ID}
			f.byKind["routes"][r.ID] = entity{kind: "routes", id: r.ID, name: r.Name, body: rb}
		}
		for _, p := range s.Plugins {
			pb, err := toJSONMap(p)
			if err != nil {
				return flat{}, fmt.Errorf("encoding plugin %s: %w", p.Name, err)
			}
			pb["service"] = map[string]any{"id": s.ID}
			f.byKind["plugins"][p.ID] = entity{kind: "plugins", id: p.ID, name: p.Name, body: pb}
		}
	}
	for _, u := range st.Upstreams {
		body, err := toJSONMap(u)
		if err != nil {
			return flat{}, fmt.Errorf("encoding upstream %s: %w", u.Name, err)
		}
		delete(body, "targets")
		f.byKind["upstreams"][u.ID] = entity{kind: "upstreams", id: u.ID, name: u.Name, body: body}
		h := sha256.New()
		for _, t := range u.Targets {
			tb, err := toJSONMap(t)
			if err != nil {
				return flat{}, fmt.Errorf("encoding target %s: %w", t.Target, err)
			}
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
