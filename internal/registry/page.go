package registry

import (
	"context"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A listing page holds at most this many entries, whatever the caller asks:
// a page is what one request holds in memory.
const MaxPage = 1000

// ListRoutesPage returns up to limit routes (1..MaxPage) in host-then-path
// order, starting after the route whose cursor is after ("" = from the
// start), and the cursor of the last one when more follow ("" = done). A
// cursor is opaque to callers; it stays valid when routes come and go, so a
// paged listing sees every route that exists throughout it exactly once.
func (s *Store) ListRoutesPage(ctx context.Context, after string, limit int) ([]Route, string, error) {
	limit = min(max(limit, 1), MaxPage)
	start := "-"
	if after != "" {
		start = "(" + after
	}
	var read *redis.StringSliceCmd
	err := s.readIndex(ctx, "list routes", func(p redis.Pipeliner) {
		read = p.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.keys.index("routes"), Start: start, Stop: "+",
			ByLex: true, Count: int64(limit + 1)})
	})
	if err != nil {
		return nil, "", err
	}
	members := read.Val()
	next := ""
	if len(members) > limit {
		members = members[:limit]
		next = members[limit-1]
	}
	routes, err := s.readRoutes(ctx, "list routes", members)
	return routes, next, err
}

// readRoutes reads the records of index members ("host\x00path"), in
// order. A member whose record is gone (a write interrupted between its two
// steps) is skipped and repaired.
func (s *Store) readRoutes(ctx context.Context, op string, members []string) ([]Route, error) {
	cmds := make([]*redis.SliceCmd, len(members))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			host, path, _ := strings.Cut(m, "\x00")
			cmds[i] = p.HMGet(ctx, s.keys.svc(ServiceName(host, path), "route"), "spec", "registered_at")
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(op, err)
	}
	routes := make([]Route, 0, len(members))
	for i, c := range cmds {
		vals := c.Val()
		spec, _ := vals[0].(string)
		at, _ := vals[1].(string)
		host, path, _ := strings.Cut(members[i], "\x00")
		if spec == "" {
			if _, err := s.reindex(ctx, ServiceName(host, path), members[i], ""); err != nil {
				return nil, err
			}
			continue
		}
		r, err := decodeRoute(spec, at)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// ListServicesPage is ListServices one page at a time: up to limit
// (1..MaxPage) services carrying every one of tags, by name, after the
// service named after ("" = from the start), and the name to continue
// after when more may follow ("" = done). Only the page's services are
// read; the names are sorted in memory (the index is a set).
func (s *Store) ListServicesPage(ctx context.Context, tags []string, after string, limit int) ([]Service, string, error) {
	limit = min(max(limit, 1), MaxPage)
	var read *redis.StringSliceCmd
	err := s.readIndex(ctx, "list services", func(p redis.Pipeliner) {
		read = p.SMembers(ctx, s.keys.index("services"))
	})
	if err != nil {
		return nil, "", err
	}
	names := read.Val()
	sort.Strings(names)
	names = names[sort.SearchStrings(names, after):]
	if len(names) > 0 && names[0] == after {
		names = names[1:]
	}
	var out []Service
	for len(names) > 0 && len(out) < limit {
		batch := names[:min(len(names), limit-len(out))]
		names = names[len(batch):]
		svcs, found, err := s.readServices(ctx, "list services", batch)
		if err != nil {
			return nil, "", err
		}
		for i, svc := range svcs {
			switch {
			case !found[i]:
				if _, err := s.reindex(ctx, batch[i], "", ""); err != nil {
					return nil, "", err
				}
			case hasAll(svc.Tags, tags):
				out = append(out, svc)
			}
		}
		after = batch[len(batch)-1]
	}
	if len(names) == 0 {
		return out, "", nil
	}
	return out, after, nil
}
