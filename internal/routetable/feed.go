package routetable

import (
	"context"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// maxBatch bounds the feed messages applied with one read and one swap.
const maxBatch = 1024

// run keeps one subscription to the change feed alive until Close; each
// subscription starts with a full load.
func (t *Table) run() {
	defer t.wg.Done()
	for t.ctx.Err() == nil {
		ch, err := t.src.Watch(t.ctx)
		if err != nil {
			t.failed("subscribe", err)
			if !t.sleep(t.opts.ResubscribeBackoff) {
				return
			}
			continue
		}
		t.subs.Add(1)
		t.ok()
		// Subscribed first, loaded second: a change made after the load
		// read its record is in the feed, one made before is in the load.
		t.follow(ch, !t.fullLoad())
	}
}

// follow applies the feed until it closes (a resubscription: messages may
// have been lost, so the caller subscribes and loads again).
func (t *Table) follow(ch <-chan registry.Change, needLoad bool) {
	tick := time.NewTicker(t.opts.PollInterval)
	defer tick.Stop()
	for {
		var retry <-chan time.Time
		if needLoad {
			retry = time.After(t.opts.ResubscribeBackoff)
		}
		select {
		case <-t.ctx.Done():
			return
		case c, ok := <-ch:
			if !ok {
				return
			}
			if !t.applyFeed(c, ch) {
				return
			}
		case <-retry:
			needLoad = !t.fullLoad()
		case <-tick.C:
			if !needLoad {
				t.check()
			}
		case <-t.settleReq:
			// A miss read a generation the table has not checked: check
			// now (with needLoad, the retried full load settles it).
			if !needLoad {
				t.check()
			}
		}
	}
}

// applyFeed re-reads the route record of c's service and of every message
// already queued behind it (one pipeline, one swap); false when the feed
// closed meanwhile.
func (t *Table) applyFeed(c registry.Change, ch <-chan registry.Change) bool {
	seen := map[string]bool{c.Service: true}
	services := []string{c.Service}
	open := true
drain:
	for len(services) < maxBatch {
		select {
		case c2, ok := <-ch:
			if !ok {
				open = false
				break drain
			}
			if !seen[c2.Service] {
				seen[c2.Service] = true
				services = append(services, c2.Service)
			}
		default:
			break drain
		}
	}
	t.changes.Add(int64(len(services)))
	t.reread(services)
	return open
}

// reread reads the records of services and applies them: present is an
// upsert, absent a delete. A failed read is retried at the next poll.
func (t *Table) reread(services []string) {
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.Timeout)
	defer cancel()
	routes, err := t.src.ReadServingRoutesOf(ctx, services)
	if err != nil {
		t.failed("read routes", err)
		for _, s := range services {
			t.retry[s] = true
		}
		return
	}
	t.ok()
	got := make(map[string]registry.ServingRoute, len(routes))
	for _, r := range routes {
		got[r.Service] = r
	}
	touched := map[bucket]bool{}
	for _, s := range services {
		delete(t.retry, s)
		r, ok := got[s]
		t.set(s, r, ok, touched)
	}
	t.publish(touched)
}

// fullLoad reads every route and replaces the table; false on failure
// (the table keeps its state).
func (t *Table) fullLoad() bool {
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.Timeout)
	defer cancel()
	// The generation is read first: a write during the load moves it past
	// this value, so the next poll checks the index again.
	gen, err := t.src.Generation(ctx)
	if err != nil {
		t.failed("generation", err)
		return false
	}
	services, err := t.src.RouteServices(ctx)
	if err != nil {
		t.failed("read route index", err)
		return false
	}
	routes, err := t.src.ReadServingRoutesOf(ctx, services)
	if err != nil {
		t.failed("read routes", err)
		return false
	}
	t.ok()
	got := make(map[string]registry.ServingRoute, len(routes))
	for _, r := range routes {
		got[r.Service] = r
	}
	touched := map[bucket]bool{}
	for s := range t.byService {
		if _, ok := got[s]; !ok {
			t.set(s, registry.ServingRoute{}, false, touched)
		}
	}
	for s, r := range got {
		t.set(s, r, true, touched)
	}
	clear(t.retry)
	t.gen = gen
	t.publish(touched)
	t.settle(gen)
	t.fullLoads.Add(1)
	select {
	case <-t.loaded:
	default:
		close(t.loaded)
	}
	t.log.Info("service-registry: route table loaded", "routes", len(t.byService), "took", time.Since(start).String())
	return true
}

// check is the backstop: when the registry generation moved, compare the
// route index with the table and re-read every service on one side only
// (and those whose last re-read failed). A record changed in place under
// the same host and path with both feed messages lost is not seen here;
// messages are lost only with the connection, which reloads everything.
func (t *Table) check() {
	ctx, cancel := context.WithTimeout(t.ctx, t.opts.Timeout)
	defer cancel()
	gen, err := t.src.Generation(ctx)
	if err != nil {
		t.failed("generation", err)
		return
	}
	t.ok()
	if gen == t.gen && len(t.retry) == 0 {
		t.settle(gen)
		return
	}
	services, err := t.src.RouteServices(ctx)
	if err != nil {
		t.failed("read route index", err)
		return
	}
	t.syncs.Add(1)
	inIndex := make(map[string]bool, len(services))
	var differ []string
	for _, s := range services {
		inIndex[s] = true
		if t.byService[s] == nil || t.retry[s] {
			differ = append(differ, s)
		}
	}
	for s := range t.byService {
		if !inIndex[s] {
			differ = append(differ, s)
		}
	}
	for s := range t.retry {
		if !inIndex[s] && t.byService[s] == nil {
			differ = append(differ, s)
		}
	}
	t.gen = gen
	if len(differ) > 0 {
		t.reread(differ)
	}
	if len(t.retry) == 0 {
		t.settle(gen)
	}
}
