package kongsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// dbSync applies a desired state to a Kong with a database, entity by
// entity, touching only entities tagged managed-by.
type dbSync struct {
	c           *client
	concurrency int
	deepEvery   int
	runs        int
	// applied maps upstream id → hash of the targets last applied to it.
	applied map[string]string
	// known maps "kind/id" → hash of the body this replica last saw Kong
	// accept (after a full reconcile or a write), so a change-triggered
	// apply writes only what changed without reading Kong. warm says the
	// map is trustworthy; any failure makes the next apply a full one.
	known       map[string]string
	knownParent map[string]string // target id → upstream id
	warm        bool
}

func entityKey(kind, id string) string { return kind + "/" + id }

func bodyHash(body map[string]any) string {
	b, _ := json.Marshal(body) // map keys are sorted: stable
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// remember records want as what Kong holds.
func (d *dbSync) remember(want flat) {
	d.known = make(map[string]string, len(want.byKind)*1024)
	d.knownParent = map[string]string{}
	for kind, ents := range want.byKind {
		for id, e := range ents {
			d.known[entityKey(kind, id)] = bodyHash(e.body)
			if kind == "targets" {
				d.knownParent[id] = e.parent
			}
		}
	}
	d.warm = true
}

// applyChanges writes only entities whose desired body differs from what
// this replica last applied, and deletes the ones no longer desired,
// without listing Kong. Drift made in Kong is left to the next full apply.
func (d *dbSync) applyChanges(ctx context.Context, want flat) (Result, error) {
	if !d.warm {
		return d.apply(ctx, want)
	}
	var res Result
	var deletes, upserts [3][]op
	phaseDel := map[string]int{"plugins": 0, "routes": 0, "targets": 1, "services": 2, "upstreams": 2}
	phaseUp := map[string]int{"services": 0, "upstreams": 0, "routes": 1, "targets": 1, "plugins": 2}
	hashes := map[string]string{}
	for kind, ents := range want.byKind {
		for id, e := range ents {
			key := entityKey(kind, id)
			h := bodyHash(e.body)
			hashes[key] = h
			old, seen := d.known[key]
			switch {
			case !seen:
				res.Created++
			case old != h:
				res.Updated++
			default:
				res.Unchanged++
				continue
			}
			method := http.MethodPut
			if kind == "targets" && !seen {
				// Kong's target PUT only updates: a new target is a POST.
				method = http.MethodPost
			}
			upserts[phaseUp[kind]] = append(upserts[phaseUp[kind]], op{kind: kind, method: method, e: e})
		}
	}
	for key := range d.known {
		kind, id, _ := strings.Cut(key, "/")
		if _, ok := want.byKind[kind][id]; ok {
			continue
		}
		deletes[phaseDel[kind]] = append(deletes[phaseDel[kind]], op{kind: kind, method: http.MethodDelete,
			e: entity{kind: kind, id: id, parent: d.knownParent[id], name: id}})
		res.Deleted++
	}
	errs := d.runPhases(ctx, deletes[:], upserts[:])
	if len(errs) > 0 {
		d.warm = false
		return res, joinErrs(errs)
	}
	for key, h := range hashes {
		d.known[key] = h
	}
	for _, e := range want.byKind["targets"] {
		d.knownParent[e.id] = e.parent
	}
	for key := range d.known {
		if _, ok := hashes[key]; !ok {
			delete(d.known, key)
		}
	}
	for uid := range want.byKind["upstreams"] {
		d.applied[uid] = want.targetSets[uid]
	}
	return res, nil
}

// runPhases runs deletes (reverse dependency order) then upserts
// (dependency order), each phase with bounded concurrency, and collects
// every error instead of stopping at the first.
func (d *dbSync) runPhases(ctx context.Context, deletes, upserts [][]op) []error {
	var errs []error
	var errMu sync.Mutex
	run := func(ops []op) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(d.concurrency)
		for _, o := range ops {
			g.Go(func() error {
				if err := d.exec(gctx, o); err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
				return nil
			})
		}
		_ = g.Wait()
	}
	for _, phase := range deletes {
		run(phase)
	}
	for _, phase := range upserts {
		run(phase)
	}
	return errs
}

type op struct {
	kind, method string
	e            entity
	actualID     string
}

func (d *dbSync) apply(ctx context.Context, want flat) (Result, error) {
	deep := d.runs%d.deepEvery == 0
	d.runs++

	// 1. What Kong has: one paged list per kind, scoped by the tag.
	actual := map[string]map[string]map[string]any{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, kind := range []string{"services", "routes", "plugins", "upstreams"} {
		g.Go(func() error {
			list, err := d.c.list(gctx, "/"+kind, translator.TagManaged)
			if err != nil {
				return err
			}
			m := make(map[string]map[string]any, len(list))
			for _, e := range list {
				if id, ok := e["id"].(string); ok {
					m[id] = e
				}
			}
			mu.Lock()
			actual[kind] = m
			mu.Unlock()
			return nil
		})
	}
	taggedTargets := map[string]bool{}
	g.Go(func() error {
		rows, err := d.c.list(gctx, "/tags/"+escape(translator.TagManaged), "")
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rows {
			if r["entity_name"] == "targets" {
				if id, ok := r["entity_id"].(string); ok {
					taggedTargets[id] = true
				}
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return Result{}, fmt.Errorf("listing managed entities: %w", err)
	}

	// 2. Targets: Kong lists them only per upstream, so list only the
	// upstreams whose targets may differ. A managed target we do not want
	// (its upstream unknown from /tags) makes this a deep pass.
	for id := range taggedTargets {
		if _, ok := want.byKind["targets"][id]; !ok {
			deep = true
			break
		}
	}
	wantTargets := map[string][]entity{}
	for _, t := range want.byKind["targets"] {
		wantTargets[t.parent] = append(wantTargets[t.parent], t)
	}
	actualTargets := map[string]map[string]map[string]any{} // upstream → id → target
	var inspect []string
	for uid := range want.byKind["upstreams"] {
		if _, exists := actual["upstreams"][uid]; !exists {
			actualTargets[uid] = map[string]map[string]any{}
			continue
		}
		need := deep || d.applied[uid] != want.targetSets[uid]
		for _, t := range wantTargets[uid] {
			if !taggedTargets[t.id] {
				need = true
			}
		}
		if need {
			inspect = append(inspect, uid)
		}
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(d.concurrency)
	for _, uid := range inspect {
		g.Go(func() error {
			list, err := d.c.list(gctx, "/upstreams/"+uid+"/targets", "")
			if err != nil {
				return err
			}
			m := map[string]map[string]any{}
			for _, t := range list {
				if hasTag(t, translator.TagManaged) {
					m[t["id"].(string)] = t
				}
			}
			mu.Lock()
			actualTargets[uid] = m
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, fmt.Errorf("listing targets: %w", err)
	}

	// 3. The plan.
	var res Result
	var deletes, upserts [5][]op // by phase
	phaseDel := map[string]int{"plugins": 0, "routes": 0, "targets": 1, "services": 2, "upstreams": 2}
	phaseUp := map[string]int{"services": 0, "upstreams": 0, "routes": 1, "targets": 1, "plugins": 2}
	for _, kind := range []string{"services", "routes", "plugins", "upstreams"} {
		for id, a := range actual[kind] {
			if _, ok := want.byKind[kind][id]; !ok && !want.protected(a) {
				name, _ := a["name"].(string)
				deletes[phaseDel[kind]] = append(deletes[phaseDel[kind]], op{kind: kind, method: http.MethodDelete, e: entity{kind: kind, id: id, name: name}})
			}
		}
		for id, w := range want.byKind[kind] {
			a, ok := actual[kind][id]
			switch {
			case !ok:
				upserts[phaseUp[kind]] = append(upserts[phaseUp[kind]], op{kind: kind, method: http.MethodPut, e: w})
				res.Created++
			case !subsetEqual(w.body, a):
				upserts[phaseUp[kind]] = append(upserts[phaseUp[kind]], op{kind: kind, method: http.MethodPut, e: w, actualID: id})
				res.Updated++
			default:
				res.Unchanged++
			}
		}
	}
	for uid, have := range actualTargets {
		for id, a := range have {
			if _, ok := want.byKind["targets"][id]; !ok && !want.protected(a) {
				deletes[1] = append(deletes[1], op{kind: "targets", method: http.MethodDelete, e: entity{kind: "targets", id: id, parent: uid, name: fmt.Sprint(a["target"])}})
			}
		}
		for _, w := range wantTargets[uid] {
			a, ok := have[w.id]
			switch {
			case !ok:
				upserts[1] = append(upserts[1], op{kind: "targets", method: http.MethodPost, e: w})
				res.Created++
			case !subsetEqual(w.body, a):
				upserts[1] = append(upserts[1], op{kind: "targets", method: http.MethodPut, e: w, actualID: w.id})
				res.Updated++
			default:
				res.Unchanged++
			}
		}
	}
	for _, phase := range deletes {
		res.Deleted += len(phase)
	}

	// 4. Deletes first (reverse dependency order) so a name freed by a stale
	// entity can be taken by its replacement, then upserts in dependency order.
	errs := d.runPhases(ctx, deletes[:3], upserts[:3])
	if len(errs) == 0 {
		d.remember(want)
		for uid := range want.byKind["upstreams"] {
			d.applied[uid] = want.targetSets[uid]
		}
		for uid := range d.applied {
			if _, ok := want.byKind["upstreams"][uid]; !ok {
				delete(d.applied, uid)
			}
		}
	} else {
		// Re-inspect everything next time: we do not know what landed.
		d.applied = map[string]string{}
		d.warm = false
	}
	return res, joinErrs(errs)
}

func (d *dbSync) exec(ctx context.Context, o op) error {
	switch {
	case o.kind == "targets" && o.method == http.MethodDelete:
		err := d.c.do(ctx, http.MethodDelete, "/upstreams/"+o.e.parent+"/targets/"+o.e.id, nil, nil, nil)
		if isNotFound(err) {
			return nil
		}
		return wrapOp(o, err)
	case o.kind == "targets" && o.method == http.MethodPut:
		err := d.c.do(ctx, http.MethodPut, "/upstreams/"+o.e.parent+"/targets/"+o.e.id, nil, o.e.body, nil)
		if !isNotFound(err) {
			return wrapOp(o, err)
		}
		fallthrough
	case o.kind == "targets":
		err := d.c.do(ctx, http.MethodPost, "/upstreams/"+o.e.parent+"/targets", nil, o.e.body, nil)
		if StatusCode(err) == http.StatusConflict && o.method == http.MethodPost {
			// Already there (written by an apply whose answer was lost).
			err = d.c.do(ctx, http.MethodPut, "/upstreams/"+o.e.parent+"/targets/"+o.e.id, nil, o.e.body, nil)
		}
		return wrapOp(o, err)
	case o.method == http.MethodDelete:
		return wrapOp(o, d.c.do(ctx, http.MethodDelete, "/"+o.kind+"/"+o.e.id, nil, nil, nil))
	default:
		// PUT by id creates or replaces the whole entity, which also reverts
		// fields someone edited that we do not set.
		return wrapOp(o, d.c.do(ctx, http.MethodPut, "/"+o.kind+"/"+o.e.id, nil, o.e.body, nil))
	}
}

func wrapOp(o op, err error) error {
	if err == nil {
		return nil
	}
	verb := map[string]string{http.MethodDelete: "deleting", http.MethodPut: "writing", http.MethodPost: "creating"}[o.method]
	return fmt.Errorf("%s %s %s: %w", verb, singular(o.kind), o.e.name, err)
}

func singular(kind string) string { return kind[:len(kind)-1] }

func hasTag(e map[string]any, tag string) bool {
	ts, _ := e["tags"].([]any)
	for _, t := range ts {
		if t == tag {
			return true
		}
	}
	return false
}
