package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxWeight is the largest instance weight (Kong's target weight range).
const MaxWeight = 65535

// SchemaVersion is the keyspace version this code reads and writes.
const SchemaVersion = "1"

// ErrInvalid is returned for input the store refuses (empty names, weights
// out of range). The API layer validates first; this is the last line.
var ErrInvalid = errors.New("invalid registry input")

// Options configures a Store. The zero value is usable.
type Options struct {
	// Prefix of every key; default "sr".
	Prefix string
	// Now is the clock for timestamps and lease expiry; default time.Now.
	Now func() time.Time
}

// Change is one message of the change feed: Service is now at Version.
type Change struct {
	Service string
	Version int64
}

// Store reads and writes the registry in Redis (standalone, Sentinel or
// Cluster through redis.UniversalClient). It is safe for concurrent use.
type Store struct {
	rdb        redis.UniversalClient
	keys       keyspace
	now        func() time.Time
	schemaDone atomic.Bool
}

// NewStore returns a Store over rdb. It does not talk to Redis.
func NewStore(rdb redis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = "sr"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{rdb: rdb, keys: keyspace{prefix: o.Prefix}, now: o.Now}
}

// Prefix returns the key prefix in use.
func (s *Store) Prefix() string { return s.keys.prefix }

// Channel returns the pub/sub channel of the change feed.
func (s *Store) Channel() string { return s.keys.channel() }

// VersionKey returns the Redis key holding a service's version (for readers
// that batch their own commands, like the discovery cache).
func (s *Store) VersionKey(service string) string { return s.keys.svc(service, "version") }

func unavailable(op string, err error) error {
	return fmt.Errorf("registry: %s: %w: %w", op, ErrUnavailable, err)
}

// InputError is the detail of an ErrInvalid: the input field (by its JSON
// name) and why, fit to show to an API client as "field: why".
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InputError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("registry: %w", &InputError{Field: field, Msg: fmt.Sprintf(format, a...)})
}

func invalidName(name string) error {
	if err := CheckServiceName(name); err != nil {
		return fmt.Errorf("registry: %w", &InputError{Field: "name", Msg: err.Error()})
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// EnsureSchema writes the keyspace version when the key is empty. Writes call
// it once per Store; migrations/ owns moving it forward.
func (s *Store) EnsureSchema(ctx context.Context) error {
	if s.schemaDone.Load() {
		return nil
	}
	if err := s.rdb.SetNX(ctx, s.keys.schema(), SchemaVersion, 0).Err(); err != nil {
		return unavailable("schema", err)
	}
	s.schemaDone.Store(true)
	return nil
}

// result is the decoded reply of a per-service script.
type result struct {
	code        int64
	version     int64
	exists      bool
	member      string
	routeExists bool
	extra       string
	lease       string // first lease end, unix ms; "0" for none
}

func (s *Store) run(ctx context.Context, op string, sc *redis.Script, service string, args ...any) (result, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return result{}, err
	}
	argv := append([]any{s.keys.channel(), service}, args...)
	raw, err := sc.Run(ctx, s.rdb, s.keys.serviceKeys(service), argv...).Slice()
	if err != nil {
		return result{}, unavailable(op, err)
	}
	r, err := decodeResult(raw)
	if err != nil {
		return result{}, fmt.Errorf("registry: %s: %w", op, err)
	}
	if r.code == codeOK && r.version > 0 {
		// The write is done; the indexes follow. A failure here leaves an
		// index entry missing or dangling, which readers tolerate and repair.
		if err := s.applyIndex(ctx, service, r); err != nil {
			return r, err
		}
	}
	return r, nil
}

func decodeResult(raw []any) (result, error) {
	if len(raw) < 6 {
		return result{}, fmt.Errorf("unexpected script reply %v", raw)
	}
	var r result
	var ok [6]bool
	r.code, ok[0] = raw[0].(int64)
	r.version, ok[1] = raw[1].(int64)
	var e, re int64
	e, ok[2] = raw[2].(int64)
	r.member, ok[3] = raw[3].(string)
	re, ok[4] = raw[4].(int64)
	r.extra, ok[5] = raw[5].(string)
	for _, b := range ok {
		if !b {
			return result{}, fmt.Errorf("unexpected script reply %v", raw)
		}
	}
	r.exists, r.routeExists = e == 1, re == 1
	r.lease = "0"
	if len(raw) > 6 {
		if l, ok := raw[6].(string); ok && l != "" {
			r.lease = l
		}
	}
	return r, nil
}

func (s *Store) applyIndex(ctx context.Context, service string, r result) error {
	err := indexScript.Run(ctx, s.rdb, s.keys.indexKeys(),
		service, r.version, b2i(r.exists), r.member, b2i(r.routeExists), r.lease).Err()
	if err != nil {
		return unavailable("index", err)
	}
	return nil
}

// reindex re-applies a service's current state to the indexes; member is the
// route index entry to correct when the route record is gone.
func (s *Store) reindex(ctx context.Context, service, member string) error {
	raw, err := stateScript.Run(ctx, s.rdb, s.keys.serviceKeys(service), s.keys.channel(), service).Slice()
	if err != nil {
		return unavailable("reindex", err)
	}
	r, err := decodeResult(raw)
	if err != nil {
		return fmt.Errorf("registry: reindex: %w", err)
	}
	if r.member == "" {
		r.member = member
	}
	return s.applyIndex(ctx, service, r)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func codeErr(code int64) error {
	switch code {
	case codeRouteExists:
		return ErrRouteExists
	case codeRouteNotFound:
		return ErrRouteNotFound
	case codeServiceNotFound:
		return ErrServiceNotFound
	case codeInstanceNotFound:
		return ErrInstanceNotFound
	}
	return fmt.Errorf("registry: unexpected script status %d", code)
}

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
	res, err := s.run(ctx, "register route", registerScript, name,
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
		if err := s.reindex(ctx, name, routeMember(r.Host, r.Path)); err != nil {
			return Route{}, false, err
		}
		return stored, false, nil
	}
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
// skipped and repaired.
func (s *Store) ListRoutes(ctx context.Context) ([]Route, error) {
	members, err := s.rdb.ZRange(ctx, s.keys.index("routes"), 0, -1).Result()
	if err != nil {
		return nil, unavailable("list routes", err)
	}
	cmds := make([]*redis.SliceCmd, len(members))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			host, path, _ := strings.Cut(m, "\x00")
			cmds[i] = p.HMGet(ctx, s.keys.svc(ServiceName(host, path), "route"), "spec", "registered_at")
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("list routes", err)
	}
	routes := make([]Route, 0, len(members))
	for i, c := range cmds {
		vals := c.Val()
		spec, _ := vals[0].(string)
		at, _ := vals[1].(string)
		host, path, _ := strings.Cut(members[i], "\x00")
		if spec == "" {
			if err := s.reindex(ctx, ServiceName(host, path), members[i]); err != nil {
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

// CountRoutes returns the size of the route index (one command).
func (s *Store) CountRoutes(ctx context.Context) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.index("routes")).Result()
	if err != nil {
		return 0, unavailable("count routes", err)
	}
	return int(n), nil
}

func (s *Store) checkInstance(service string, in Instance) error {
	switch {
	case !validName(service):
		return invalidName(service)
	case in.ID == "":
		return invalid("id", "required")
	case in.Address == "":
		return invalid("address", "required")
	case in.Weight < 0 || in.Weight > MaxWeight:
		return invalid("weight", "%d outside 0..%d", in.Weight, MaxWeight)
	case in.TTLSeconds < 0:
		return invalid("ttl_s", "%d is negative", in.TTLSeconds)
	}
	if _, _, err := ValidateAddress(in.Address); err != nil {
		return invalid("address", "%v", err)
	}
	return nil
}

func expiryMillis(in Instance) int64 {
	if in.TTLSeconds <= 0 || in.ExpiresAt.IsZero() {
		return 0
	}
	return in.ExpiresAt.UnixMilli()
}

// PutInstance creates or replaces an instance (and the service if missing).
func (s *Store) PutInstance(ctx context.Context, service string, in Instance) (Instance, error) {
	if err := s.checkInstance(service, in); err != nil {
		return Instance{}, err
	}
	now := s.now().UTC()
	in.UpdatedAt = now
	in.ExpiresAt = time.Time{}
	if in.TTLSeconds > 0 {
		in.ExpiresAt = now.Add(time.Duration(in.TTLSeconds) * time.Second)
	}
	js, _ := json.Marshal(in)
	res, err := s.run(ctx, "put instance", putInstanceScript, service, "", in.ID, js, expiryMillis(in))
	if err != nil {
		return Instance{}, err
	}
	if res.code != codeOK {
		return Instance{}, codeErr(res.code)
	}
	return in, nil
}

// updateInstance applies change to one instance with compare-and-swap,
// retrying when a concurrent writer got there first.
func (s *Store) updateInstance(ctx context.Context, op, service, id string, change func(*Instance)) (Instance, error) {
	if err := invalidName(service); err != nil {
		return Instance{}, err
	}
	if id == "" {
		return Instance{}, invalid("id", "required")
	}
	key := s.keys.svc(service, "instances")
	for attempt := 0; attempt < 20; attempt++ {
		old, err := s.rdb.HGet(ctx, key, id).Result()
		if errors.Is(err, redis.Nil) {
			if _, err := s.GetService(ctx, service); err != nil {
				return Instance{}, err
			}
			return Instance{}, ErrInstanceNotFound
		}
		if err != nil {
			return Instance{}, unavailable(op, err)
		}
		var in Instance
		if err := json.Unmarshal([]byte(old), &in); err != nil {
			return Instance{}, fmt.Errorf("registry: %s: decoding instance: %w", op, err)
		}
		change(&in)
		if err := s.checkInstance(service, in); err != nil {
			return Instance{}, err
		}
		js, _ := json.Marshal(in)
		res, err := s.run(ctx, op, casInstanceScript, service, "", id, old, js, expiryMillis(in))
		if err != nil {
			return Instance{}, err
		}
		if res.code == codeConflict {
			continue
		}
		if res.code != codeOK {
			return Instance{}, codeErr(res.code)
		}
		return in, nil
	}
	return Instance{}, fmt.Errorf("registry: %s: too much contention on %s/%s", op, service, id)
}

// PatchInstance changes an instance's weight (blue-green, canary, drain).
func (s *Store) PatchInstance(ctx context.Context, service, id string, weight int) (Instance, error) {
	if weight < 0 || weight > MaxWeight {
		return Instance{}, invalid("weight", "%d outside 0..%d", weight, MaxWeight)
	}
	return s.updateInstance(ctx, "patch instance", service, id, func(in *Instance) {
		in.Weight = weight
		in.UpdatedAt = s.now().UTC()
	})
}

// Heartbeat renews an instance's lease for another TTLSeconds. An instance
// without a TTL is returned unchanged.
func (s *Store) Heartbeat(ctx context.Context, service, id string) (Instance, error) {
	return s.updateInstance(ctx, "heartbeat", service, id, func(in *Instance) {
		now := s.now().UTC()
		in.UpdatedAt = now
		if in.TTLSeconds > 0 {
			in.ExpiresAt = now.Add(time.Duration(in.TTLSeconds) * time.Second)
		}
	})
}

// DeleteInstance removes one instance; the service stays (possibly empty).
func (s *Store) DeleteInstance(ctx context.Context, service, id string) error {
	if err := invalidName(service); err != nil {
		return err
	}
	if id == "" {
		return invalid("id", "required")
	}
	res, err := s.run(ctx, "delete instance", deleteInstanceScript, service, "", id)
	if err != nil {
		return err
	}
	if res.code != codeOK {
		return codeErr(res.code)
	}
	return nil
}

// SetMaintenance turns maintenance mode on or off for a service.
func (s *Store) SetMaintenance(ctx context.Context, service string, m Maintenance) error {
	js, _ := json.Marshal(m)
	return s.setField(ctx, "set maintenance", service, "maintenance", js)
}

// SetServiceTags replaces a service's tags.
func (s *Store) SetServiceTags(ctx context.Context, service string, tags []string) error {
	if tags == nil {
		tags = []string{}
	}
	js, _ := json.Marshal(tags)
	return s.setField(ctx, "set tags", service, "tags", js)
}

func (s *Store) setField(ctx context.Context, op, service, field string, js []byte) error {
	if err := invalidName(service); err != nil {
		return err
	}
	res, err := s.run(ctx, op, setFieldScript, service, "", field, js)
	if err != nil {
		return err
	}
	if res.code != codeOK {
		return codeErr(res.code)
	}
	return nil
}

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
	names, err := s.rdb.SMembers(ctx, s.keys.index("services")).Result()
	if err != nil {
		return nil, unavailable("list services", err)
	}
	sort.Strings(names)
	svcs, found, err := s.readServices(ctx, "list services", names)
	if err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(names))
	for i, svc := range svcs {
		if !found[i] {
			// Dangling index entry (an interrupted write): skip and repair.
			if err := s.reindex(ctx, names[i], ""); err != nil {
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

// ServiceVersion returns a service's version (0 when never written). It
// keeps growing across deletion and re-creation.
func (s *Store) ServiceVersion(ctx context.Context, name string) (int64, error) {
	v, err := s.rdb.Get(ctx, s.keys.svc(name, "version")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("service version", err)
	}
	return v, nil
}

// Generation returns a counter bumped by every write anywhere in the registry.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.keys.index("generation")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("generation", err)
	}
	return v, nil
}

// ExpireInstances removes every lease that ended at or before Now, bumping
// the versions of the services it touches. It visits only the services the
// lease index says have a lease due, so a sweep with nothing due is one
// command.
func (s *Store) ExpireInstances(ctx context.Context) (int, error) {
	now := s.now().UnixMilli()
	names, err := s.rdb.ZRangeByScore(ctx, s.keys.index("leases"), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now, 10),
	}).Result()
	if err != nil {
		return 0, unavailable("expire instances", err)
	}
	removed := 0
	for _, name := range names {
		res, err := s.run(ctx, "expire instances", expireScript, name, "", now)
		if err != nil {
			return removed, err
		}
		n, _ := strconv.Atoi(res.extra)
		removed += n
	}
	return removed, nil
}

// Watch subscribes to the change feed. The channel closes when ctx ends.
// Pub/sub drops messages while reconnecting: readers must also poll
// versions (the discovery cache does).
func (s *Store) Watch(ctx context.Context) (<-chan Change, error) {
	ps := s.rdb.Subscribe(ctx, s.keys.channel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, unavailable("watch", err)
	}
	out := make(chan Change, 256)
	msgs := ps.Channel()
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				c, ok := ParseChange(m.Payload)
				if !ok {
					continue
				}
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// ParseChange decodes a change-feed payload "<version> <service>".
func ParseChange(payload string) (Change, bool) {
	v, name, ok := strings.Cut(payload, " ")
	if !ok || name == "" {
		return Change{}, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return Change{}, false
	}
	return Change{Service: name, Version: n}, true
}
