package kongsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// kind is a Kong entity kind. Its value is its place in the one dependency
// order: an entity refers only to kinds of a lower level (a route to its
// service, a target to its upstream, a plugin to its service), so upserts
// run level by level upwards and deletes downwards.
type kind int

const (
	kindService kind = iota
	kindUpstream
	kindRoute
	kindTarget
	kindPlugin
	numKinds
)

// levels groups kinds that do not depend on each other: each level runs
// concurrently, levels run in order.
var levels = [...][]kind{
	{kindService, kindUpstream},
	{kindRoute, kindTarget},
	{kindPlugin},
}

var kindNames = [numKinds]string{"services", "upstreams", "routes", "targets", "plugins"}

func (k kind) String() string { return kindNames[k] }

// entity is one Kong entity of ours, typed per kind (service.go, route.go,
// upstream.go, target.go, plugin.go), JSON-encoded as the Admin API takes it.
type entity interface {
	kind() kind
	id() string
	label() string  // name, or the address for a target (for messages)
	parent() string // the upstream id for a target, "" otherwise
	tagList() []string
	// same reports whether have (read from Kong) matches this desired
	// entity in every field we set: Kong's defaults are not drift.
	same(have entity) bool
	// write creates (create) or replaces this entity; remove deletes it.
	write(ctx context.Context, c *client, create bool) error
	remove(ctx context.Context, c *client) error
}

// ref is a foreign key as the Admin API writes it.
type ref struct {
	ID string `json:"id"`
}

func refID(r *ref) string {
	if r == nil {
		return ""
	}
	return r.ID
}

// desired is the state we want, by kind and id.
type desired struct {
	byKind [numKinds]map[string]entity
	// targetSets holds a hash of each upstream's desired targets, so a
	// reconcile lists an upstream's targets only when they may differ.
	targetSets map[string]string
	targetsOf  map[string][]string // upstream id → its desired target ids
	// protect holds the tag pairs of routes the translator could not
	// translate: their entities stay as they are in Kong rather than being
	// deleted for a translation bug.
	protect map[string]bool
	// fallback holds, in plugin scope global, the service-registry plugins
	// the route services carry in scope service (serviceScope).
	fallback []entity
}

func newDesired(st translator.State) desired {
	d := desired{targetSets: map[string]string{}, targetsOf: map[string][]string{}, protect: map[string]bool{}}
	for k := range d.byKind {
		d.byKind[k] = map[string]entity{}
	}
	for _, e := range st.Errors {
		d.protect[tagPair(translator.Tags(e.Host, e.Path))] = true
	}
	add := func(e entity) { d.byKind[e.kind()][e.id()] = e }
	for _, s := range st.Services {
		add(newService(s))
		for _, r := range s.Routes {
			add(newRoute(r, s.ID))
		}
		for _, p := range s.Plugins {
			add(newPlugin(p, s.ID))
		}
		if s.RegistryPlugin != nil {
			d.fallback = append(d.fallback, newPlugin(*s.RegistryPlugin, s.ID))
		}
	}
	for _, p := range st.Plugins {
		add(newPlugin(p, ""))
	}
	for _, u := range st.Upstreams {
		add(newUpstream(u))
		for _, t := range u.Targets {
			add(newTarget(t, u.ID))
			d.targetsOf[u.ID] = append(d.targetsOf[u.ID], t.ID)
		}
		d.targetSets[u.ID] = targetSetHash(u.Targets)
	}
	return d
}

func (d desired) get(k kind, id string) (entity, bool) {
	e, ok := d.byKind[k][id]
	return e, ok
}

// protected reports whether e belongs to a route the translator failed on.
func (d desired) protected(e entity) bool {
	return len(d.protect) > 0 && d.protect[tagPair(e.tagList())]
}

// tagPair is the sr-host/sr-path tag pair that names the route an entity
// was made for.
func tagPair(tags []string) string {
	if translator.IsFastPath(tags) {
		// The catch-all belongs to no route: it is one unit of its own.
		return translator.TagFastPath
	}
	if translator.IsGlobal(tags) {
		// So is the global plugin.
		return translator.TagGlobal
	}
	var h, p string
	for _, s := range tags {
		switch {
		case len(s) > len(translator.TagHostPrefix) && strings.HasPrefix(s, translator.TagHostPrefix):
			h = s
		case len(s) > len(translator.TagPathPrefix) && strings.HasPrefix(s, translator.TagPathPrefix):
			p = s
		}
	}
	return h + "|" + p
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// bodyHash fingerprints what we write for e (encoding/json sorts map keys,
// so it is stable).
func bodyHash(e entity) string {
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// path is the Admin API path of an entity addressed by id.
func path(k kind, id string) string { return "/" + k.String() + "/" + id }

// writeByID is the PUT by id that creates or replaces the whole entity,
// which also reverts fields someone edited in Kong that we do not set.
func writeByID(ctx context.Context, c *client, e entity) error {
	return c.do(ctx, "PUT", path(e.kind(), e.id()), nil, e, nil)
}

func removeByID(ctx context.Context, c *client, e entity) error {
	return c.do(ctx, "DELETE", path(e.kind(), e.id()), nil, nil, nil)
}
