package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// routeSpec is what makes two registrations "the same": everything but the time.
type routeSpec struct {
	Host    string          `json:"host"`
	Path    string          `json:"path"`
	Backend string          `json:"backend"`
	Options json.RawMessage `json:"options,omitempty"`
}

// canonicalOptions re-encodes options with sorted keys so that equal options
// compare equal byte for byte; null and {} mean "no options".
func canonicalOptions(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" || string(t) == "{}" {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(t, &v); err != nil {
		return nil, invalid("options", "%v", err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, invalid("options", "%v", err)
	}
	return out, nil
}

// InstanceFromBackend derives the single instance a go-proxy route gets from
// its backend URL: id and address "host:port" (80/443 by default), scheme.
func InstanceFromBackend(backend string) (Instance, error) {
	u, err := url.Parse(backend)
	if err != nil || u.Host == "" {
		return Instance{}, invalid("backend", "%q is not an absolute URL", backend)
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https", "wss":
			port = "443"
		default:
			port = "80"
		}
	}
	if err := ValidateHost(u.Hostname()); err != nil {
		return Instance{}, invalid("backend", "%v", err)
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	if _, _, err := ValidateAddress(addr); err != nil {
		return Instance{}, invalid("backend", "%v", err)
	}
	return Instance{ID: addr, Address: addr, Scheme: u.Scheme, Weight: 100}, nil
}

// RegisterRoute stores a go-proxy route and its service in one atomic write.
// Registering the same route again is idempotent (created=false, the
// original returned); a different backend or options gives ErrRouteExists.
func (s *Store) RegisterRoute(ctx context.Context, r Route) (Route, bool, error) {
	if r.Host == "" || r.Path == "" || r.Backend == "" {
		return Route{}, false, invalid("host, path and backend", "required")
	}
	opts, err := canonicalOptions(r.Options)
	if err != nil {
		return Route{}, false, err
	}
	in, err := InstanceFromBackend(r.Backend)
	if err != nil {
		return Route{}, false, err
	}
	now := s.now().UTC()
	in.UpdatedAt = now
	spec, _ := json.Marshal(routeSpec{Host: r.Host, Path: r.Path, Backend: r.Backend, Options: opts})
	inJSON, _ := json.Marshal(in)
	name := ServiceName(r.Host, r.Path)
	res, token, err := s.runJournaled(ctx, "register route", registerScript, name,
		routeMember(r.Host, r.Path), spec, now.Format(time.RFC3339Nano), in.ID, inJSON)
	if err != nil {
		return Route{}, false, err
	}
	stored := Route{Host: r.Host, Path: r.Path, Backend: r.Backend, Options: opts}
	switch res.code {
	case codeOK:
		stored.RegisteredAt = now
		return stored, true, nil
	case codeSame:
		stored.RegisteredAt, _ = time.Parse(time.RFC3339Nano, res.extra)
		// Heal an index entry a crashed earlier write may have left missing.
		if _, err := s.reindex(ctx, name, routeMember(r.Host, r.Path), token); err != nil {
			return Route{}, false, err
		}
		return stored, false, nil
	}
	s.dropToken(ctx, token)
	return Route{}, false, codeErr(res.code)
}

// DeregisterRoute removes a route and its service atomically.
func (s *Store) DeregisterRoute(ctx context.Context, host, path string) (Route, error) {
	name := ServiceName(host, path)
	res, err := s.run(ctx, "deregister route", deregisterScript, name, routeMember(host, path))
	if err != nil {
		return Route{}, err
	}
	if res.code != codeOK {
		return Route{}, codeErr(res.code)
	}
	var pair [2]string
	if err := json.Unmarshal([]byte(res.extra), &pair); err != nil {
		return Route{}, fmt.Errorf("registry: deregister route: %w", err)
	}
	return decodeRoute(pair[0], pair[1])
}

func decodeRoute(spec, registeredAt string) (Route, error) {
	var rs routeSpec
	if err := json.Unmarshal([]byte(spec), &rs); err != nil {
		return Route{}, fmt.Errorf("registry: decoding route: %w", err)
	}
	at, _ := time.Parse(time.RFC3339Nano, registeredAt)
	return Route{Host: rs.Host, Path: rs.Path, Backend: rs.Backend, Options: rs.Options, RegisteredAt: at}, nil
}

// GetRoute returns one route or ErrRouteNotFound.
func (s *Store) GetRoute(ctx context.Context, host, path string) (Route, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.svc(ServiceName(host, path), "route"), "spec", "registered_at").Result()
	if err != nil {
		return Route{}, unavailable("get route", err)
	}
	spec, _ := vals[0].(string)
	at, _ := vals[1].(string)
	if spec == "" {
		return Route{}, ErrRouteNotFound
	}
	r, err := decodeRoute(spec, at)
	if err != nil {
		return Route{}, err
	}
	if r.Host != host || r.Path != path {
		return Route{}, ErrRouteNotFound
	}
	return r, nil
}

// ListRoutes returns every route, sorted by host, then path. An index entry
// whose record is gone (a write interrupted between its two steps) is
// skipped and repaired; so is a record the index missed (the journal).
func (s *Store) ListRoutes(ctx context.Context) ([]Route, error) {
	var read *redis.StringSliceCmd
	err := s.readIndex(ctx, "list routes", func(p redis.Pipeliner) {
		read = p.ZRange(ctx, s.keys.index("routes"), 0, -1)
	})
	if err != nil {
		return nil, err
	}
	routes, err := s.readRoutes(ctx, "list routes", read.Val())
	if err != nil {
		return nil, err
	}
	// The index is ordered by "host\x00path" bytes, which is host then path;
	// sort anyway so the contract never depends on the index encoding.
	sort.SliceStable(routes, func(i, j int) bool {
		if routes[i].Host != routes[j].Host {
			return routes[i].Host < routes[j].Host
		}
		return routes[i].Path < routes[j].Path
	})
	return routes, nil
}

// CountRoutes returns the size of the route index (one round trip unless
// the journal has writes to repair).
func (s *Store) CountRoutes(ctx context.Context) (int, error) {
	var n *redis.IntCmd
	err := s.readIndex(ctx, "count routes", func(p redis.Pipeliner) {
		n = p.ZCard(ctx, s.keys.index("routes"))
	})
	if err != nil {
		return 0, err
	}
	return int(n.Val()), nil
}
