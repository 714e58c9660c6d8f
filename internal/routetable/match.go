package routetable

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// Entry is one route of the table. It is immutable except for the value
// its user builds once (Value): a changed record makes a new Entry.
type Entry struct {
	Service string
	Route   registry.Route

	once  sync.Once
	built atomic.Bool // val is set: the lookup allocates nothing
	val   any
}

// Value returns what build makes of this route, built once per route
// record (the plugin compiles the route's config here, so every request of
// the route shares it).
func (e *Entry) Value(build func(*Entry) any) any {
	if e.built.Load() {
		return e.val
	}
	e.once.Do(func() {
		e.val = build(e)
		e.built.Store(true)
	})
	return e.val
}

// same reports whether r is the record e was made from.
func (e *Entry) same(r registry.Route) bool {
	return e.Route.Host == r.Host && e.Route.Path == r.Path && e.Route.Backend == r.Backend &&
		string(e.Route.Options) == string(r.Options) && e.Route.RegisteredAt.Equal(r.RegisteredAt)
}

// snapshot is one immutable state of the table.
type snapshot struct {
	// exact: host -> routes, longest path first; wild: ".example.com"
	// (the route host "*.example.com" without its star) -> routes.
	exact map[string][]*Entry
	wild  map[string][]*Entry
	// byService: registry (and Kong) service name -> its route.
	byService map[string]*Entry
	n         int
}

var emptySnapshot = &snapshot{exact: map[string][]*Entry{}, wild: map[string][]*Entry{}, byService: map[string]*Entry{}}

// match finds the route Kong's router would pick among the table's
// routes: exact host first (PLAIN_HOST_ONLY_BIT ranks above path length),
// then the longest path prefix among every wildcard host that matches.
func (s *snapshot) match(host, path string) *Entry {
	if e := longestPrefix(s.exact[host], path); e != nil {
		return e
	}
	if len(s.wild) == 0 {
		return nil
	}
	var best *Entry
	for i := 1; i < len(host); i++ {
		if host[i] != '.' {
			continue
		}
		// Kong's wildcard "*.example.com" is the regex .+\.example\.com$
		// (traditional.lua): every dot after the first byte starts a
		// candidate suffix. Between equal path lengths the longer (more
		// specific) suffix, seen first, stays.
		if e := longestPrefix(s.wild[host[i:]], path); e != nil && (best == nil || len(e.Route.Path) > len(best.Route.Path)) {
			best = e
		}
	}
	return best
}

// longestPrefix returns the first route (they are sorted longest path
// first) whose path is a plain string prefix of path, as Kong's "^=".
func longestPrefix(routes []*Entry, path string) *Entry {
	for _, e := range routes {
		if strings.HasPrefix(path, e.Route.Path) {
			return e
		}
	}
	return nil
}

// hostKey returns the bucket a route host belongs to.
func hostKey(host string) (key string, wildcard bool) {
	if rest, ok := strings.CutPrefix(host, "*"); ok {
		return rest, true
	}
	return host, false
}

// sortBucket orders a host's routes longest path first (ties cannot
// happen: a host and path make one route).
func sortBucket(b []*Entry) {
	sort.Slice(b, func(i, j int) bool {
		if len(b[i].Route.Path) != len(b[j].Route.Path) {
			return len(b[i].Route.Path) > len(b[j].Route.Path)
		}
		return b[i].Route.Path < b[j].Route.Path
	})
}

// RequestHost is the host Kong's router matches for a Host header
// (kong/router/traditional.lua split_port, the router of both real Kongs
// the tests run): the part before the first ':' when only digits follow,
// or nothing (a bare trailing ':'); otherwise the header unchanged. The
// case is kept: Kong compares hosts as sent (fastpath-facts (f)).
func RequestHost(header string) string {
	i := strings.IndexByte(header, ':')
	if i < 0 || header[0] == '[' {
		return header
	}
	for _, c := range []byte(header[i+1:]) {
		if c < '0' || c > '9' {
			return header
		}
	}
	return header[:i]
}
