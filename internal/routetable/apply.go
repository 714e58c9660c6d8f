package routetable

import "github.com/kong-service-registry/service-registry/internal/registry"

// set records service's state (present with r, or absent) in the
// writer-side maps and notes the buckets it touched. An unchanged record
// keeps its Entry, and with it what was built from it.
func (t *Table) set(service string, r registry.ServingRoute, present bool, touched map[bucket]bool) {
	old := t.byService[service]
	if present && old != nil && old.same(r.Route) {
		return
	}
	t.svcTouched[service] = true
	if old != nil {
		b := bucketOf(old.Route.Host)
		delete(t.buckets[b], service)
		if len(t.buckets[b]) == 0 {
			delete(t.buckets, b)
		}
		delete(t.byService, service)
		touched[b] = true
	}
	if !present {
		return
	}
	e := &Entry{Service: service, Route: r.Route}
	b := bucketOf(r.Route.Host)
	if t.buckets[b] == nil {
		t.buckets[b] = map[string]*Entry{}
	}
	t.buckets[b][service] = e
	t.byService[service] = e
	touched[b] = true
}

func bucketOf(host string) bucket {
	key, wild := hostKey(host)
	return bucket{key: key, wild: wild}
}

// publish swaps in a snapshot with the touched buckets rebuilt; the maps
// are copied (pointers only), never changed in place, since readers hold
// the old snapshot without a lock.
func (t *Table) publish(touched map[bucket]bool) {
	if len(touched) == 0 {
		return
	}
	old := t.snap.Load()
	next := &snapshot{exact: copyMap(old.exact, touched, false), wild: copyMap(old.wild, touched, true),
		byService: t.servicesAfter(old.byService), n: len(t.byService)}
	for b := range touched {
		m := next.exact
		if b.wild {
			m = next.wild
		}
		routes := t.buckets[b]
		if len(routes) == 0 {
			delete(m, b.key)
			continue
		}
		list := make([]*Entry, 0, len(routes))
		for _, e := range routes {
			list = append(list, e)
		}
		sortBucket(list)
		m[b.key] = list
	}
	t.snap.Store(next)
}

// copyMap copies m unless no bucket of its kind was touched.
func copyMap(m map[string][]*Entry, touched map[bucket]bool, wild bool) map[string][]*Entry {
	for b := range touched {
		if b.wild == wild {
			out := make(map[string][]*Entry, len(m)+len(touched))
			for k, v := range m {
				out[k] = v
			}
			return out
		}
	}
	return m
}

// servicesAfter is the snapshot's service index with the services set
// touched since the last publish brought up to date (a copy: readers hold
// the old one).
func (t *Table) servicesAfter(old map[string]*Entry) map[string]*Entry {
	if len(t.svcTouched) == 0 {
		return old
	}
	out := make(map[string]*Entry, len(t.byService))
	for k, v := range old {
		out[k] = v
	}
	for s := range t.svcTouched {
		if e := t.byService[s]; e != nil {
			out[s] = e
		} else {
			delete(out, s)
		}
	}
	clear(t.svcTouched)
	return out
}
