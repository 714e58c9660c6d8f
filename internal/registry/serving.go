package registry

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Readers for the plugin's fast path (internal/routetable). Unlike
// ListRoutes they never write: the plugin only reads the registry, and an
// index entry left dangling or missing by a crashed write is repaired by
// adminsvc's readers, while the change feed and the record are the truth.

// ServingRoute is a route record with its registry service name.
type ServingRoute struct {
	Service string
	Route   Route
}

// RouteServices returns the registry service of every route the index
// lists, in index order (one ZRANGE).
func (s *Store) RouteServices(ctx context.Context) ([]string, error) {
	members, err := s.rdb.ZRange(ctx, s.keys.index("routes"), 0, -1).Result()
	if err != nil {
		return nil, unavailable("read routes", err)
	}
	names := make([]string, len(members))
	for i, m := range members {
		host, path, _ := strings.Cut(m, "\x00")
		names[i] = ServiceName(host, path)
	}
	return names, nil
}

// ReadServingRoutesOf reads the route records of services (one pipeline);
// a service without a route record, or whose record is not its own route,
// is left out.
func (s *Store) ReadServingRoutesOf(ctx context.Context, services []string) ([]ServingRoute, error) {
	cmds := make([]*redis.SliceCmd, len(services))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range services {
			cmds[i] = p.HMGet(ctx, s.keys.svc(name, "route"), "spec", "registered_at")
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("read routes", err)
	}
	out := make([]ServingRoute, 0, len(services))
	for i, c := range cmds {
		vals := c.Val()
		spec, _ := vals[0].(string)
		at, _ := vals[1].(string)
		if spec == "" {
			continue
		}
		r, err := decodeRoute(spec, at)
		// A record that does not decode, or belongs to another name, was
		// not written by this store: serving it would route by garbage.
		if err != nil || ServiceName(r.Host, r.Path) != services[i] {
			continue
		}
		out = append(out, ServingRoute{Service: services[i], Route: r})
	}
	return out, nil
}
