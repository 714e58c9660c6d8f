package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// readServices reads each named service atomically (readScript), pipelined
// in batches; found[i] is false for a service that does not exist.
func (s *Store) readServices(ctx context.Context, op string, names []string) ([]Service, []bool, error) {
	svcs := make([]Service, len(names))
	found := make([]bool, len(names))
	const batch = 256
	for lo := 0; lo < len(names); lo += batch {
		part := names[lo:min(lo+batch, len(names))]
		var cmds []*redis.Cmd
		exec := func() error {
			cmds = make([]*redis.Cmd, len(part))
			_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, name := range part {
					cmds[i] = readScript.EvalSha(ctx, p, s.keys.serviceKeys(name))
				}
				return nil
			})
			return err
		}
		err := exec()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// First use on this server (or after SCRIPT FLUSH / failover):
			// load it (on every master of a Cluster) and retry once.
			if lerr := readScript.Load(ctx, s.rdb).Err(); lerr != nil {
				return nil, nil, unavailable(op, lerr)
			}
			err = exec()
		}
		if err != nil {
			return nil, nil, unavailable(op, err)
		}
		for i, name := range part {
			svc, ok, err := decodeService(name, cmds[i].Val())
			if err != nil {
				return nil, nil, fmt.Errorf("registry: %s: %w", op, err)
			}
			svcs[lo+i], found[lo+i] = svc, ok
		}
	}
	return svcs, found, nil
}

// pairs turns a flat HGETALL reply into a map.
func pairs(v any) map[string]string {
	arr, _ := v.([]any)
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		m[k] = val
	}
	return m
}

func decodeService(name string, reply any) (Service, bool, error) {
	parts, ok := reply.([]any)
	if !ok || len(parts) != 3 {
		return Service{}, false, fmt.Errorf("unexpected reply for %s: %v", name, reply)
	}
	v, _ := parts[2].(string)
	version, _ := strconv.ParseInt(v, 10, 64)
	meta := pairs(parts[0])
	if len(meta) == 0 {
		return Service{Name: name, Version: version}, false, nil
	}
	svc := Service{Name: name, Version: version, Instances: []Instance{}}
	if t := meta["tags"]; t != "" {
		if err := json.Unmarshal([]byte(t), &svc.Tags); err != nil {
			return Service{}, false, fmt.Errorf("decoding tags of %s: %w", name, err)
		}
	}
	if m := meta["maintenance"]; m != "" {
		if err := json.Unmarshal([]byte(m), &svc.Maintenance); err != nil {
			return Service{}, false, fmt.Errorf("decoding maintenance of %s: %w", name, err)
		}
	}
	for _, js := range pairs(parts[1]) {
		var in Instance
		if err := json.Unmarshal([]byte(js), &in); err != nil {
			return Service{}, false, fmt.Errorf("decoding instance of %s: %w", name, err)
		}
		svc.Instances = append(svc.Instances, in)
	}
	sort.Slice(svc.Instances, func(i, j int) bool { return svc.Instances[i].ID < svc.Instances[j].ID })
	return svc, true, nil
}

// GetService returns a service with its instances (sorted by id) and
// version, read atomically; ErrServiceNotFound when it does not exist.
func (s *Store) GetService(ctx context.Context, name string) (Service, error) {
	svc, ok, err := s.LoadService(ctx, name)
	if err != nil {
		return Service{}, err
	}
	if !ok {
		return Service{}, ErrServiceNotFound
	}
	return svc, nil
}

// LoadService is GetService for caches: found=false for a missing service,
// whose Version is still the current version key (deletion bumps it), read
// in the same atomic step, so "absent at version v" is a consistent fact.
func (s *Store) LoadService(ctx context.Context, name string) (Service, bool, error) {
	if !validName(name) {
		return Service{Name: name}, false, nil
	}
	raw, err := readScript.Run(ctx, s.rdb, s.keys.serviceKeys(name)).Result()
	if err != nil {
		return Service{}, false, unavailable("get service", err)
	}
	svc, ok, err := decodeService(name, raw)
	if err != nil {
		return Service{}, false, fmt.Errorf("registry: get service: %w", err)
	}
	return svc, ok, nil
}

// ListServices returns the services carrying every one of tags (all when
// tags is empty), sorted by name; each service is read atomically.
func (s *Store) ListServices(ctx context.Context, tags []string) ([]Service, error) {
	var read *redis.StringSliceCmd
	err := s.readIndex(ctx, "list services", func(p redis.Pipeliner) {
		read = p.SMembers(ctx, s.keys.index("services"))
	})
	if err != nil {
		return nil, err
	}
	names := read.Val()
	sort.Strings(names)
	svcs, found, err := s.readServices(ctx, "list services", names)
	if err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(names))
	for i, svc := range svcs {
		if !found[i] {
			// Dangling index entry (an interrupted write): skip and repair.
			if _, err := s.reindex(ctx, names[i], "", ""); err != nil {
				return nil, err
			}
			continue
		}
		if hasAll(svc.Tags, tags) {
			out = append(out, svc)
		}
	}
	return out, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
