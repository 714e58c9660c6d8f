package kongsync

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// dbSync applies a desired state to a Kong with a database, entity by
// entity, touching only entities tagged managed-by: list → plan → execute.
type dbSync struct {
	c           *client
	concurrency int
	deepEvery   int
	runs        int
	// targetSets maps upstream id → hash of the targets last applied to it.
	targetSets map[string]string
	// known is what this replica last saw Kong accept (after a full
	// reconcile or a write), so a change-triggered apply writes only what
	// changed without reading Kong. warm says it is trustworthy; any
	// failure makes the next apply a full one.
	known applied
	warm  bool
	// shadow is the operator's route that catches "/" without hosts, seen
	// by the last full apply: while there is one, our catch-all is not
	// written (see fastpath.go).
	shadow string
	// globalShadow is an operator's own global service-registry plugin,
	// seen by the last full apply: while there is one, the route services
	// carry their own plugins instead of our global one (scope.go).
	globalShadow string
	// settle, pluginSince, pending: the catch-all route waits for its
	// plugin (settle.go). now is the Syncer's clock.
	settle      time.Duration
	pluginSince time.Time
	pending     bool
	now         func() time.Time
}

// apply is a full reconcile: list what Kong holds, plan, execute.
func (d *dbSync) apply(ctx context.Context, want desired) (Result, []Refusal, error) {
	d.pending = false // set again by holdCatchAll once Kong is listed
	deep := d.runs%d.deepEvery == 0
	d.runs++
	have, err := d.list(ctx, want, deep)
	if err != nil {
		return Result{}, nil, err
	}
	d.shadow = have.shadow
	if d.shadow != "" {
		want = want.withoutFastPath()
	}
	if d.globalShadow = have.globalShadow; d.globalShadow != "" {
		want = want.serviceScope()
	}
	want, wait := d.holdCatchAll(want, func(k key) bool { _, ok := have.byKind[k.k][k.id]; return ok })
	p := planFull(want, have)
	res := p.result()
	res.RetryIn = wait
	refused, errs := execute(ctx, d.c, &p, d.concurrency)
	if len(errs) > 0 || len(refused) > 0 {
		// Re-inspect everything next time: we do not know what landed.
		d.targetSets = map[string]string{}
		d.warm = false
		return res, refused, joinErrs(errs)
	}
	d.remember(want, want.hashes())
	return res, nil, nil
}

// applyChanges writes only entities whose desired body differs from what
// this replica last applied, and deletes the ones no longer desired,
// without listing Kong.
func (d *dbSync) applyChanges(ctx context.Context, want desired) (Result, []Refusal, error) {
	if !d.warm {
		return d.apply(ctx, want)
	}
	if d.shadow != "" {
		want = want.withoutFastPath()
	}
	if d.globalShadow != "" {
		want = want.serviceScope()
	}
	want, wait := d.holdCatchAll(want, func(k key) bool { _, ok := d.known[k]; return ok })
	hashes := want.hashes()
	p := planChanges(want, d.known, hashes)
	res := p.result()
	res.RetryIn = wait
	refused, errs := execute(ctx, d.c, &p, d.concurrency)
	if len(errs) > 0 || len(refused) > 0 {
		d.warm = false
		return res, refused, joinErrs(errs)
	}
	d.remember(want, hashes)
	return res, nil, nil
}

// remember records want as what Kong holds.
func (d *dbSync) remember(want desired, hashes map[key]string) {
	d.notePluginWritten(want)
	d.known = make(applied, len(hashes))
	for k, h := range hashes {
		e, _ := want.get(k.k, k.id)
		d.known[k] = appliedEntry{hash: h, parent: e.parent()}
	}
	d.warm = true
	for uid := range d.targetSets {
		if _, ok := want.get(kindUpstream, uid); !ok {
			delete(d.targetSets, uid)
		}
	}
	for uid := range want.byKind[kindUpstream] {
		d.targetSets[uid] = want.targetSets[uid]
	}
}

// list reads what Kong holds of ours: one paged list per kind, scoped by
// the tag; targets (which Kong lists only per upstream) only for the
// upstreams whose targets may differ, or all of them when deep.
func (d *dbSync) list(ctx context.Context, want desired, deep bool) (actual, error) {
	have := actual{listed: map[string]bool{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	listKind := func(k kind, get func() ([]entity, error)) {
		g.Go(func() error {
			es, err := get()
			if err != nil {
				return err
			}
			m := make(map[string]entity, len(es))
			for _, e := range es {
				m[e.id()] = e
			}
			mu.Lock()
			have.byKind[k] = m
			mu.Unlock()
			return nil
		})
	}
	listKind(kindService, func() ([]entity, error) { return listEntities[service](gctx, d.c, kindService) })
	// With the fast path wanted, every route is listed to spot an
	// operator's catch-all (fastpath.go); with our global plugin (or its
	// fallback) wanted, every plugin, to spot an operator's global one
	// (scope.go).
	listKind(kindRoute, spottingLister[route, catchAll](gctx, d.c, kindRoute, want.hasFastPath(), &have.shadow))
	listKind(kindPlugin, spottingLister[plugin, globalProbe](gctx, d.c, kindPlugin,
		len(want.fallback) > 0 || want.hasGlobal(), &have.globalShadow))
	listKind(kindUpstream, func() ([]entity, error) { return listEntities[upstream](gctx, d.c, kindUpstream) })
	var tagged map[string]bool
	g.Go(func() (err error) {
		tagged, err = taggedTargets(gctx, d.c)
		return err
	})
	if err := g.Wait(); err != nil {
		return actual{}, fmt.Errorf("listing managed entities: %w", err)
	}
	// A managed target we do not want (its upstream unknown from /tags)
	// makes this a deep pass.
	for id := range tagged {
		if _, ok := want.get(kindTarget, id); !ok {
			deep = true
			break
		}
	}
	have.byKind[kindTarget] = map[string]entity{}
	var inspect []string
	for uid := range want.byKind[kindUpstream] {
		if _, exists := have.byKind[kindUpstream][uid]; !exists {
			have.listed[uid] = true // a new upstream has no targets yet
		} else if d.mayDiffer(want, uid, deep, tagged) {
			inspect = append(inspect, uid)
		}
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(d.concurrency)
	for _, uid := range inspect {
		g.Go(func() error {
			ts, err := list[target](gctx, d.c, "/upstreams/"+uid+"/targets", "")
			if err != nil {
				return err
			}
			mu.Lock()
			for id, t := range managedTargets(ts) {
				have.byKind[kindTarget][id] = t
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return actual{}, fmt.Errorf("listing targets: %w", err)
	}
	for _, uid := range inspect {
		have.listed[uid] = true
	}
	return have, nil
}

// mayDiffer reports whether upstream uid's targets in Kong may differ from
// the desired ones.
func (d *dbSync) mayDiffer(want desired, uid string, deep bool, tagged map[string]bool) bool {
	if deep || d.targetSets[uid] != want.targetSets[uid] {
		return true
	}
	for _, id := range want.targetsOf[uid] {
		if !tagged[id] {
			return true
		}
	}
	return false
}

// listEntities lists one kind's entities tagged as ours.
func listEntities[T entity](ctx context.Context, c *client, k kind) ([]entity, error) {
	es, err := list[T](ctx, c, "/"+k.String(), translator.TagManaged)
	if err != nil {
		return nil, err
	}
	out := make([]entity, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out, nil
}

// taggedTargets lists the ids of the targets tagged as ours (GET /tags is
// the only way to find targets without listing every upstream's).
func taggedTargets(ctx context.Context, c *client) (map[string]bool, error) {
	type row struct {
		EntityName string `json:"entity_name"`
		EntityID   string `json:"entity_id"`
	}
	rs, err := list[row](ctx, c, "/tags/"+escape(translator.TagManaged), "")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rs {
		if r.EntityName == "targets" {
			out[r.EntityID] = true
		}
	}
	return out, nil
}

// spotter is what listAllSpotting reads of every listed entity before
// anything else: its tags, and whether it is the operator's entity the
// listing looks for, with its label.
type spotter interface {
	tagList() []string
	spot() (string, bool)
}

// spottingLister lists our entities of kind k: by our tag, or, when all,
// every one of them (one paged list like the tagged one), storing in
// shadow the label of the first operator's entity S spots ("" when none).
func spottingLister[T entity, S spotter](ctx context.Context, c *client, k kind, all bool, shadow *string) func() ([]entity, error) {
	if !all {
		return func() ([]entity, error) { return listEntities[T](ctx, c, k) }
	}
	return func() (es []entity, err error) {
		es, *shadow, err = listAllSpotting[T, S](ctx, c, k)
		return es, err
	}
}

// listAllSpotting lists every entity of kind k in Kong, returns ours and
// the label of the first other one S spots.
func listAllSpotting[T entity, S spotter](ctx context.Context, c *client, k kind) ([]entity, string, error) {
	raws, err := list[json.RawMessage](ctx, c, "/"+k.String(), "")
	if err != nil {
		return nil, "", err
	}
	var ours []entity
	var shadow string
	for _, raw := range raws {
		var s S
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "", fmt.Errorf("reading kong %s: %w", k, err)
		}
		if !hasTag(s.tagList(), translator.TagManaged) {
			if label, ok := s.spot(); ok && shadow == "" {
				shadow = label
			}
			continue
		}
		var e T
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, "", fmt.Errorf("reading kong %s: %w", k, err)
		}
		ours = append(ours, e)
	}
	return ours, shadow, nil
}
