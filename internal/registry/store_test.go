package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// backends runs f against a standalone server and the package's shared
// 3-master cluster (redistest.SharedCluster), with a key prefix of the
// test's own so tests sharing the cluster never see each other's keys.
func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, prefix string)) {
	prefix := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := s.Client()
		t.Cleanup(func() { _ = c.Close() })
		f(t, c, prefix)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		f(t, redistest.SharedCluster(t).Client(t), prefix)
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
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		clk := newClock()
		s := registry.NewStore(rdb, registry.Options{Prefix: p, Now: clk.Now})
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
		if v, _ := rdb.Get(c, registry.SchemaKey(p)).Result(); v != "1" {
			t.Errorf("schema key = %q", v)
		}
	})
}

func TestWatch(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: p})
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
