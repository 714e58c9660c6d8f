package kongsync

import "github.com/kong-service-registry/service-registry/internal/translator"

// action is what a plan does to one entity.
type action int

const (
	create action = iota
	update
	remove
)

func (a action) String() string { return [...]string{"create", "update", "delete"}[a] }

// op is one planned write.
type op struct {
	act action
	e   entity
}

// plan is what an apply will do, computed without touching Kong: deletes
// first (so a name freed by a stale entity can be taken by its
// replacement), from the highest dependency level down, then creates and
// updates from the lowest level up.
//
// The global plugin (plugin scope global) stands apart: it takes the place
// of the service-registry plugins on the route services, so it is written
// before every delete (first) and deleted after every write (last).
// Switching scope either way, each route keeps an instance: a Kong worker
// rebuilds its plugins iterator from the database, where the new plugins
// are before the old ones go. It depends on nothing. While it cannot be
// written, the route services' plugins it replaces stay (execute).
type plan struct {
	first     []op
	deletes   [numLevels][]op
	upserts   [numLevels][]op
	last      []op
	unchanged int
	// fallback writes the route services' own service-registry plugins
	// (those in Kong already and unchanged aside); execute runs it only
	// when the global plugin (first) could not be written.
	fallback []op
}

// numLevels adds one level above levels for the fast path's catch-all
// route alone: it is created after its plugin (a catch-all without the
// plugin would answer every unknown request with a 503 instead of Kong's
// 404) and deleted before it.
const numLevels = len(levels) + 1

var levelOf = func() (l [numKinds]int) {
	for i, ks := range levels {
		for _, k := range ks {
			l[k] = i
		}
	}
	return l
}()

func (p *plan) add(a action, e entity) {
	if global(e) {
		if a == remove {
			p.last = append(p.last, op{a, e})
		} else {
			p.first = append(p.first, op{a, e})
		}
		return
	}
	l := levelOf[e.kind()]
	if e.kind() == kindRoute && translator.IsFastPath(e.tagList()) {
		l = numLevels - 1
	}
	if a == remove {
		p.deletes[l] = append(p.deletes[l], op{a, e})
	} else {
		p.upserts[l] = append(p.upserts[l], op{a, e})
	}
}

// diff plans one entity: create when Kong lacks it, update when Kong's
// differs in a field we set, nothing when equal.
func (p *plan) diff(want entity, have entity, exists bool) {
	if a, ok := change(want, have, exists); ok {
		p.add(a, want)
	} else {
		p.unchanged++
	}
}

// change is the action that makes Kong's have (exists: Kong has it) want;
// false when Kong has want already.
func change(want, have entity, exists bool) (action, bool) {
	switch {
	case !exists:
		return create, true
	case !want.same(have):
		return update, true
	}
	return 0, false
}

// phases returns the ops in execution order, one slice per phase; the ops
// of a phase do not depend on each other.
func (p *plan) phases() [][]op {
	out := make([][]op, 0, 2*numLevels+2)
	if len(p.first) > 0 {
		out = append(out, p.first)
	}
	for l := numLevels - 1; l >= 0; l-- {
		if len(p.deletes[l]) > 0 {
			out = append(out, p.deletes[l])
		}
	}
	for l := range numLevels {
		if len(p.upserts[l]) > 0 {
			out = append(out, p.upserts[l])
		}
	}
	if len(p.last) > 0 {
		out = append(out, p.last)
	}
	return out
}

// result counts the plan's ops.
func (p *plan) result() Result {
	r := Result{Unchanged: p.unchanged, Deleted: len(p.last)}
	count := func(ops []op) {
		for _, o := range ops {
			if o.act == create {
				r.Created++
			} else {
				r.Updated++
			}
		}
	}
	count(p.first)
	for l := range numLevels {
		r.Deleted += len(p.deletes[l])
		count(p.upserts[l])
	}
	return r
}

// actual is what Kong holds of ours. Targets are listed per upstream, and
// only for the upstreams in listed (the others' targets are trusted).
type actual struct {
	byKind [numKinds]map[string]entity
	listed map[string]bool // upstream ids whose targets are in byKind
	// shadow is an operator's route catching "/" without hosts, when the
	// listing looked for one (fastpath.go).
	shadow string
	// globalShadow is an operator's global service-registry plugin, when
	// the listing looked for one (scope.go).
	globalShadow string
}

// planFull compares want with what Kong holds. Entities of routes the
// translator failed on are neither deleted nor counted.
func planFull(want desired, have actual) plan {
	var p plan
	for k := range kind(numKinds) {
		for id, a := range have.byKind[k] {
			if _, ok := want.get(k, id); !ok && !want.protected(a) {
				p.add(remove, a)
			}
		}
		for id, w := range want.byKind[k] {
			if k == kindTarget && !have.listed[w.parent()] {
				continue
			}
			a, ok := have.byKind[k][id]
			p.diff(w, a, ok)
		}
	}
	for _, w := range want.fallback {
		h, exists := have.byKind[kindPlugin][w.id()]
		if a, ok := change(w, h, exists); ok {
			p.fallback = append(p.fallback, op{a, w})
		}
	}
	return p
}

// key names one entity.
type key struct {
	k  kind
	id string
}

// applied is what this replica last saw Kong accept: entity → hash of the
// body (see bodyHash), and the parent of each target.
type applied map[key]appliedEntry

type appliedEntry struct {
	hash, parent string
}

// planChanges compares want with what this replica last applied, without
// reading Kong: drift made in Kong is left to the next full plan.
func planChanges(want desired, known applied, hashes map[key]string) plan {
	var p plan
	for k := range kind(numKinds) {
		for id, w := range want.byKind[k] {
			old, seen := known[key{k, id}]
			switch {
			case !seen:
				p.add(create, w)
			case old.hash != hashes[key{k, id}]:
				p.add(update, w)
			default:
				p.unchanged++
			}
		}
	}
	for kk, a := range known {
		if _, ok := want.get(kk.k, kk.id); !ok {
			p.add(remove, stub(kk.k, kk.id, a.parent))
		}
	}
	return p
}

// hashes fingerprints every desired entity's body.
func (d desired) hashes() map[key]string {
	n := 0
	for _, m := range d.byKind {
		n += len(m)
	}
	out := make(map[key]string, n)
	for k, m := range d.byKind {
		for id, e := range m {
			out[key{kind(k), id}] = bodyHash(e)
		}
	}
	return out
}

// stub is an entity known only by kind, id (and upstream for a target),
// enough to delete it.
func stub(k kind, id, parent string) entity {
	switch k {
	case kindService:
		return service{ID: id, Name: id}
	case kindRoute:
		if id == fastPathRouteID {
			// Deleted in the catch-all's own level, before its plugin.
			return route{ID: id, Name: id, Tags: translator.FastPathTags()}
		}
		return route{ID: id, Name: id}
	case kindPlugin:
		if id == translator.GlobalPluginID {
			// Deleted last, after the plugins that replace it.
			return plugin{ID: id, Name: id, Tags: translator.GlobalTags()}
		}
		return plugin{ID: id, Name: id}
	case kindUpstream:
		return upstream{ID: id, Name: id}
	}
	return target{ID: id, Target: id, Upstream: &ref{ID: parent}}
}
