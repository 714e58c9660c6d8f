package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// clock is an injectable time source for lease tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// backends runs f against a standalone server and a 3-master cluster.
func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := s.Client()
		t.Cleanup(func() { _ = c.Close() })
		f(t, c)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
		f(t, cl.Client(t))
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestServiceName(t *testing.T) {
	cases := []struct{ host, path, want string }{
		{"api.example.com", "/users", "sr-api.example.com_users"},
		{"api.example.com", "/", "sr-api.example.com_"},
		{"api.example.com", "/v1/users", "sr-api.example.com_v1_users"},
	}
	for _, c := range cases {
		if got := registry.ServiceName(c.host, c.path); got != c.want {
			t.Errorf("ServiceName(%q,%q) = %q, want %q", c.host, c.path, got, c.want)
		}
	}
	seen := map[string]string{}
	inputs := [][2]string{
		{"a.com", "/x_y"}, {"a.com", "/x/y"}, {"a.com_x", "/y"}, {"*.a.com", "/"}, {"-.a.com", "/"},
		{"A.com", "/"}, {"a.com", "/"}, {"a.com", "/~"}, {"a.com", "/-"}, {"a.com", "/" + strings.Repeat("p", 300)},
		{"a.com", "/" + strings.Repeat("p", 301)}, {"a.com", "/ü"}, {"a.com", "/ö"},
	}
	for _, in := range inputs {
		n := registry.ServiceName(in[0], in[1])
		if prev, dup := seen[n]; dup {
			t.Errorf("%q and %q share name %q", prev, in, n)
		}
		seen[n] = fmt.Sprint(in)
		if n != registry.ServiceName(in[0], in[1]) {
			t.Errorf("not deterministic for %q", in)
		}
		if len(n) > 100 {
			t.Errorf("%q too long (%d)", n, len(n))
		}
		for _, r := range n {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_~", r)) {
				t.Errorf("%q has a character Kong refuses: %q", n, r)
			}
		}
	}
}

func TestRegisterDeregister(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := ctx(t)
		clk := newClock()
		s := registry.NewStore(rdb, registry.Options{Now: clk.Now})
		r := registry.Route{Host: "api.example.com", Path: "/users", Backend: "http://10.0.0.1:8080",
			Options: json.RawMessage(`{"timeout":"30s", "retry":{"max_attempts":3,"enabled":true}}`)}
		stored, created, err := s.RegisterRoute(c, r)
		if err != nil || !created {
			t.Fatalf("register: %v created=%v", err, created)
		}
		if !stored.RegisteredAt.Equal(clk.Now()) {
			t.Errorf("registered_at %v", stored.RegisteredAt)
		}
		// Same route again, options in another key order: idempotent.
		clk.Advance(time.Minute)
		r2 := r
		r2.Options = json.RawMessage(`{"retry":{"enabled":true,"max_attempts":3},"timeout":"30s"}`)
		again, created, err := s.RegisterRoute(c, r2)
		if err != nil || created {
			t.Fatalf("re-register: %v created=%v", err, created)
		}
		if !again.RegisteredAt.Equal(stored.RegisteredAt) {
			t.Errorf("re-register changed registered_at: %v -> %v", stored.RegisteredAt, again.RegisteredAt)
		}
		// Different backend: conflict.
		r3 := r
		r3.Backend = "http://10.0.0.2:8080"
		if _, _, err := s.RegisterRoute(c, r3); !errors.Is(err, registry.ErrRouteExists) {
			t.Fatalf("conflict: got %v", err)
		}
		// Different options: conflict.
		r4 := r
		r4.Options = json.RawMessage(`{"timeout":"31s"}`)
		if _, _, err := s.RegisterRoute(c, r4); !errors.Is(err, registry.ErrRouteExists) {
			t.Fatalf("conflict on options: got %v", err)
		}

		got, err := s.GetRoute(c, r.Host, r.Path)
		if err != nil || got.Backend != r.Backend {
			t.Fatalf("get route: %+v %v", got, err)
		}
		svc, err := s.GetService(c, registry.ServiceName(r.Host, r.Path))
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Instances) != 1 || svc.Instances[0].Address != "10.0.0.1:8080" || svc.Instances[0].Scheme != "http" || svc.Version < 1 {
			t.Fatalf("service: %+v", svc)
		}
		if _, _, err := s.RegisterRoute(c, registry.Route{Host: "b.example.com", Path: "/", Backend: "https://b.internal"}); err != nil {
			t.Fatal(err)
		}
		if svc, _ := s.GetService(c, registry.ServiceName("b.example.com", "/")); svc.Instances[0].Address != "b.internal:443" {
			t.Errorf("default https port: %+v", svc.Instances)
		}
		routes, err := s.ListRoutes(c)
		if err != nil || len(routes) != 2 || routes[0].Host != "api.example.com" || routes[1].Host != "b.example.com" {
			t.Fatalf("list: %+v %v", routes, err)
		}
		if n, _ := s.CountRoutes(c); n != 2 {
			t.Errorf("count %d", n)
		}
		gen0, _ := s.Generation(c)

		dr, err := s.DeregisterRoute(c, r.Host, r.Path)
		if err != nil || dr.Backend != r.Backend {
			t.Fatalf("deregister: %+v %v", dr, err)
		}
		if _, err := s.DeregisterRoute(c, r.Host, r.Path); !errors.Is(err, registry.ErrRouteNotFound) {
			t.Fatalf("second deregister: %v", err)
		}
		if _, err := s.GetRoute(c, r.Host, r.Path); !errors.Is(err, registry.ErrRouteNotFound) {
			t.Fatalf("get after deregister: %v", err)
		}
		if _, err := s.GetService(c, registry.ServiceName(r.Host, r.Path)); !errors.Is(err, registry.ErrServiceNotFound) {
			t.Fatalf("service after deregister: %v", err)
		}
		if n, _ := s.CountRoutes(c); n != 1 {
			t.Errorf("count after deregister %d", n)
		}
		if gen1, _ := s.Generation(c); gen1 <= gen0 {
			t.Errorf("generation did not move: %d -> %d", gen0, gen1)
		}
		if v, _ := rdb.Get(c, "sr:v1:meta:schema").Result(); v != "1" {
			t.Errorf("schema key = %q", v)
		}
	})
}

func TestInstancesWeightsMaintenanceTags(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: "t"})
		if _, err := s.GetService(c, "pay"); !errors.Is(err, registry.ErrServiceNotFound) {
			t.Fatalf("missing service: %v", err)
		}
		for i, w := range []int{1, 2, 7} {
			if _, err := s.PutInstance(c, "pay", registry.Instance{ID: fmt.Sprint("i", i), Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: w}); err != nil {
				t.Fatal(err)
			}
		}
		v1, _ := s.ServiceVersion(c, "pay")
		in, err := s.PatchInstance(c, "pay", "i1", 0)
		if err != nil || in.Weight != 0 {
			t.Fatalf("patch: %+v %v", in, err)
		}
		if v2, _ := s.ServiceVersion(c, "pay"); v2 <= v1 {
			t.Errorf("version did not move on patch: %d -> %d", v1, v2)
		}
		if _, err := s.PatchInstance(c, "pay", "i1", 65536); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("weight 65536: %v", err)
		}
		if _, err := s.PutInstance(c, "pay", registry.Instance{ID: "x", Address: "a:1", Weight: -1}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("weight -1: %v", err)
		}
		if _, err := s.PutInstance(c, "", registry.Instance{ID: "x", Address: "a:1"}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("empty service: %v", err)
		}
		if _, err := s.PutInstance(c, "pay", registry.Instance{Address: "a:1"}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("empty id: %v", err)
		}
		if _, err := s.PatchInstance(c, "pay", "nope", 1); !errors.Is(err, registry.ErrInstanceNotFound) {
			t.Errorf("patch missing: %v", err)
		}
		if _, err := s.PatchInstance(c, "nosvc", "nope", 1); !errors.Is(err, registry.ErrServiceNotFound) {
			t.Errorf("patch missing service: %v", err)
		}
		if err := s.DeleteInstance(c, "pay", "i0"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteInstance(c, "pay", "i0"); !errors.Is(err, registry.ErrInstanceNotFound) {
			t.Errorf("delete twice: %v", err)
		}
		if err := s.SetMaintenance(c, "pay", registry.Maintenance{Enabled: true, Message: "back soon"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetServiceTags(c, "pay", []string{"team-a", "prod"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetServiceTags(c, "nosvc", []string{"x"}); !errors.Is(err, registry.ErrServiceNotFound) {
			t.Errorf("tags on missing: %v", err)
		}
		if _, err := s.PutInstance(c, "other", registry.Instance{ID: "o", Address: "o:1", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		svc, err := s.GetService(c, "pay")
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Instances) != 2 || svc.Instances[0].ID != "i1" || svc.Instances[0].Weight != 0 || svc.Instances[1].Weight != 7 ||
			!svc.Maintenance.Enabled || svc.Maintenance.Message != "back soon" || len(svc.Tags) != 2 {
			t.Fatalf("service: %+v", svc)
		}
		list, err := s.ListServices(c, []string{"prod", "team-a"})
		if err != nil || len(list) != 1 || list[0].Name != "pay" {
			t.Fatalf("by tags: %+v %v", list, err)
		}
		if list, _ := s.ListServices(c, nil); len(list) != 2 || list[0].Name != "other" {
			t.Fatalf("all: %+v", list)
		}
		if list, _ := s.ListServices(c, []string{"prod", "nope"}); len(list) != 0 {
			t.Fatalf("no match: %+v", list)
		}
	})
}

func TestLeasesExpire(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := ctx(t)
		clk := newClock()
		s := registry.NewStore(rdb, registry.Options{Now: clk.Now})
		in, err := s.PutInstance(c, "svc", registry.Instance{ID: "a", Address: "a:80", Weight: 1, TTLSeconds: 10})
		if err != nil {
			t.Fatal(err)
		}
		if !in.ExpiresAt.Equal(clk.Now().Add(10 * time.Second)) {
			t.Errorf("expires_at %v", in.ExpiresAt)
		}
		if _, err := s.PutInstance(c, "svc", registry.Instance{ID: "b", Address: "b:80", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(9 * time.Second)
		if n, err := s.ExpireInstances(c); err != nil || n != 0 {
			t.Fatalf("early expiry: %d %v", n, err)
		}
		hb, err := s.Heartbeat(c, "svc", "a")
		if err != nil || !hb.ExpiresAt.Equal(clk.Now().Add(10*time.Second)) {
			t.Fatalf("heartbeat: %+v %v", hb, err)
		}
		clk.Advance(9 * time.Second) // 18 s after start, 9 s after the renewal
		if n, _ := s.ExpireInstances(c); n != 0 {
			t.Fatalf("renewed lease expired: %d", n)
		}
		v0, _ := s.ServiceVersion(c, "svc")
		clk.Advance(2 * time.Second)
		if n, err := s.ExpireInstances(c); err != nil || n != 1 {
			t.Fatalf("expiry: %d %v", n, err)
		}
		if v1, _ := s.ServiceVersion(c, "svc"); v1 <= v0 {
			t.Errorf("expiry did not bump version")
		}
		svc, _ := s.GetService(c, "svc")
		if len(svc.Instances) != 1 || svc.Instances[0].ID != "b" {
			t.Fatalf("after expiry: %+v", svc.Instances)
		}
		if _, err := s.Heartbeat(c, "svc", "a"); !errors.Is(err, registry.ErrInstanceNotFound) {
			t.Errorf("heartbeat after expiry: %v", err)
		}
		// The lease index forgets a service without leases, so sweeps skip it.
		if n, _ := rdb.ZCard(c, "sr:v1:{_index}:leases").Result(); n != 0 {
			t.Errorf("lease index keeps %d services", n)
		}
		if _, err := s.PutInstance(c, "svc", registry.Instance{ID: "c", Address: "c:80", Weight: 1, TTLSeconds: 5}); err != nil {
			t.Fatal(err)
		}
		due, _ := rdb.ZScore(c, "sr:v1:{_index}:leases", "svc").Result()
		if int64(due) != clk.Now().Add(5*time.Second).UnixMilli() {
			t.Errorf("lease index score %v", due)
		}
		// The cluster test shows the sweep works when the lease index and
		// the service live on different nodes.
		clk.Advance(5 * time.Second)
		if n, err := s.ExpireInstances(c); err != nil || n != 1 {
			t.Fatalf("second expiry: %d %v", n, err)
		}
	})
}

func TestWatch(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{})
		wctx, cancel := context.WithCancel(c)
		ch, err := s.Watch(wctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutInstance(c, "w", registry.Instance{ID: "a", Address: "a:1", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case ch := <-ch:
			if ch.Service != "w" || ch.Version != 1 {
				t.Errorf("change %+v", ch)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no change received")
		}
		cancel()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("watch channel not closed after cancel")
			}
		}
	})
}

func TestUnavailable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	s := registry.NewStore(c, registry.Options{})
	srv.Kill()
	cx := ctx(t)
	checks := map[string]error{}
	_, _, checks["register"] = s.RegisterRoute(cx, registry.Route{Host: "a.com", Path: "/", Backend: "http://x"})
	_, checks["list"] = s.ListRoutes(cx)
	_, checks["get service"] = s.GetService(cx, "x")
	_, checks["put"] = s.PutInstance(cx, "x", registry.Instance{ID: "a", Address: "a:1"})
	checks["ping"] = s.Ping(cx)
	_, checks["count"] = s.CountRoutes(cx)
	for op, err := range checks {
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("%s: %v does not wrap ErrUnavailable", op, err)
		}
	}
}

// TestConcurrentWriters: 50 goroutines register and deregister overlapping
// routes; at the end the route records, the route index, the service index
// and the services agree exactly.
func TestConcurrentWriters(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{})
		const writers, routes, rounds = 50, 12, 20
		var wg sync.WaitGroup
		var failures atomic.Int64
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < rounds; i++ {
					n := (w*7 + i*3) % routes
					host, path := fmt.Sprintf("h%d.example.com", n), fmt.Sprintf("/p%d", n%3)
					var err error
					if (w+i)%2 == 0 {
						_, _, err = s.RegisterRoute(c, registry.Route{Host: host, Path: path, Backend: fmt.Sprintf("http://10.0.0.%d:80", n)})
					} else {
						_, err = s.DeregisterRoute(c, host, path)
					}
					if err != nil && !errors.Is(err, registry.ErrRouteNotFound) {
						failures.Add(1)
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		if failures.Load() > 0 {
			return
		}
		var records, services []string
		for n := 0; n < routes; n++ {
			host, path := fmt.Sprintf("h%d.example.com", n), fmt.Sprintf("/p%d", n%3)
			_, rerr := s.GetRoute(c, host, path)
			_, serr := s.GetService(c, registry.ServiceName(host, path))
			if (rerr == nil) != (serr == nil) {
				t.Errorf("%s%s: route err %v, service err %v", host, path, rerr, serr)
			}
			if rerr == nil {
				records = append(records, host+path)
				services = append(services, registry.ServiceName(host, path))
			}
		}
		idx, err := rdb.ZRange(c, "sr:v1:{_index}:routes", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i := range idx {
			idx[i] = strings.Replace(idx[i], "\x00", "", 1)
		}
		svcIdx, _ := rdb.SMembers(c, "sr:v1:{_index}:services").Result()
		sort.Strings(records)
		sort.Strings(idx)
		sort.Strings(services)
		sort.Strings(svcIdx)
		if fmt.Sprint(records) != fmt.Sprint(idx) {
			t.Errorf("route records %v != route index %v", records, idx)
		}
		if fmt.Sprint(services) != fmt.Sprint(svcIdx) {
			t.Errorf("services %v != service index %v", services, svcIdx)
		}
		if len(records) == 0 {
			t.Log("note: every route ended deregistered")
		}
	})
}

// TestIndexRepair: a write interrupted between its record step and its
// index step is never shown half-written and is healed by readers.
func TestIndexRepair(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	c := ctx(t)
	s := registry.NewStore(rdb, registry.Options{})
	if _, _, err := s.RegisterRoute(c, registry.Route{Host: "a.com", Path: "/x", Backend: "http://a:1"}); err != nil {
		t.Fatal(err)
	}
	// Simulate a deregister that died after step 1: the records are gone,
	// the index still names the route.
	name := registry.ServiceName("a.com", "/x")
	rdb.Del(c, "sr:v1:{"+name+"}:route", "sr:v1:{"+name+"}:service", "sr:v1:{"+name+"}:instances")
	rdb.Incr(c, "sr:v1:{"+name+"}:version")
	routes, err := s.ListRoutes(c)
	if err != nil || len(routes) != 0 {
		t.Fatalf("dangling entry shown: %+v %v", routes, err)
	}
	if n, _ := s.CountRoutes(c); n != 0 {
		t.Errorf("not repaired: count %d", n)
	}
	if l, _ := s.ListServices(c, nil); len(l) != 0 {
		t.Errorf("dangling service shown: %+v", l)
	}
	// A register that died before step 2: record present, index empty;
	// registering again heals the index.
	r := registry.Route{Host: "b.com", Path: "/y", Backend: "http://b:1"}
	if _, _, err := s.RegisterRoute(c, r); err != nil {
		t.Fatal(err)
	}
	rdb.ZRem(c, "sr:v1:{_index}:routes", "b.com\x00/y")
	if _, created, err := s.RegisterRoute(c, r); err != nil || created {
		t.Fatalf("re-register: %v %v", created, err)
	}
	if n, _ := s.CountRoutes(c); n != 1 {
		t.Errorf("index not healed: %d", n)
	}
}

// Listing reads many services in pipelined batches, each service
// atomically, on a fresh server (the read script is not loaded yet).
func TestListManyServices(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: "many"})
		const n = 300
		for i := 0; i < n; i++ {
			if _, err := s.PutInstance(c, fmt.Sprintf("svc-%03d", i), registry.Instance{ID: "a", Address: "a:1", Weight: i}); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.ListServices(c, nil)
		if err != nil || len(list) != n {
			t.Fatalf("list: %d %v", len(list), err)
		}
		for i, svc := range list {
			if svc.Name != fmt.Sprintf("svc-%03d", i) || len(svc.Instances) != 1 || svc.Instances[0].Weight != i || svc.Version != 1 {
				t.Fatalf("service %d: %+v", i, svc)
			}
		}
	})
}

// TestReservedNames: "_index" would share the global index's hash tag and
// keys; names starting with '_' are refused, with the field named.
func TestReservedNames(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	rdb := s.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	c := ctx(t)
	st := registry.NewStore(rdb, registry.Options{Prefix: "t"})
	for _, name := range []string{"_index", "_x", "a{b", ""} {
		_, err := st.PutInstance(c, name, registry.Instance{ID: "i", Address: "10.0.0.1:80", Weight: 1})
		var ie *registry.InputError
		if !errors.Is(err, registry.ErrInvalid) || !errors.As(err, &ie) || ie.Field != "name" {
			t.Fatalf("PutInstance(%q): %v", name, err)
		}
		if err := st.SetServiceTags(c, name, []string{"x"}); !errors.Is(err, registry.ErrInvalid) {
			t.Fatalf("SetServiceTags(%q): %v", name, err)
		}
	}
	if keys, _ := rdb.Keys(c, "t:*").Result(); len(keys) != 0 {
		t.Fatalf("refused writes left keys: %v", keys)
	}
	if err := registry.CheckServiceName("index_"); err != nil {
		t.Fatalf("'_' later in a name is fine: %v", err)
	}
}
