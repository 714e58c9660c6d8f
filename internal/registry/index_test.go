package registry_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/redis/go-redis/v9"
)

// TestConcurrentWriters: 50 goroutines register and deregister overlapping
// routes; at the end the route records, the route index, the service index
// and the services agree exactly.
func TestConcurrentWriters(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: p})
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
		idx, err := rdb.ZRange(c, p+":v1:{_index}:routes", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i := range idx {
			idx[i] = strings.Replace(idx[i], "\x00", "", 1)
		}
		svcIdx, _ := rdb.SMembers(c, p+":v1:{_index}:services").Result()
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
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: p})
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
