package sentinel

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// TestStoreThroughSentinel: the registry Store over a failover client
// registers, lists and watches, and after the primary is killed it writes
// to the promoted replica, still lists what was written before, and a Watch
// opened before the failover delivers a change made after it.
func TestStoreThroughSentinel(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 1, Sentinels: 3, Password: "pw"})
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: sn.MasterName(), SentinelAddrs: sn.Addrs(), Password: sn.Password(),
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	s := registry.NewStore(rdb, registry.Options{})
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	watch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := registry.Route{Host: "api.example.com", Path: "/users", Backend: "http://10.0.0.1:8080"}
	if _, created, err := s.RegisterRoute(ctx, r); err != nil || !created {
		t.Fatalf("register: %v created=%v", err, created)
	}
	if _, err := s.PutInstance(ctx, "orders", registry.Instance{ID: "a", Address: "10.0.0.1:80", Weight: 1}); err != nil {
		t.Fatal(err)
	}
	expectChange(t, watch, "orders", 1)
	replicated(t, sn)

	killed, promoted := sn.Failover(t, 20*time.Second)
	t.Logf("failover %s -> %s", killed.Addr, promoted.Addr)

	// The first write after the failover may meet the dead primary's
	// pooled connections; the client must reach the new primary soon.
	var in registry.Instance
	took := waitFor(t, 15*time.Second, "a write through the promoted replica", func() (bool, string) {
		var err error
		in, err = s.PutInstance(ctx, "orders", registry.Instance{ID: "b", Address: "10.0.0.2:80", Weight: 1})
		if err != nil && !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("write after failover: %v", err)
		}
		return err == nil, fmt.Sprint(err)
	})
	t.Logf("first write after promotion succeeded after %v", took)
	routes, err := s.ListRoutes(ctx)
	if err != nil || len(routes) != 1 || routes[0].Host != r.Host || routes[0].Path != r.Path {
		t.Fatalf("routes after failover: %+v %v", routes, err)
	}
	svc, err := s.GetService(ctx, "orders")
	if err != nil || len(svc.Instances) != 2 || svc.Version != 2 {
		t.Fatalf("service after failover: %+v %v (instance %+v)", svc, err, in)
	}
	// The Watch reconnects (to the promoted node, through the sentinels)
	// and sees the change: pub/sub may drop messages while reconnecting,
	// so keep changing until one arrives.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		if _, err := s.PutInstance(ctx, "watched", registry.Instance{ID: fmt.Sprint(i), Address: "10.0.0.3:80", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case c, ok := <-watch:
			if !ok {
				// The feed closes when go-redis resubscribed after the
				// failover (messages in between are lost): a reader
				// subscribes afresh, as discovery does.
				if watch, err = s.Watch(ctx); err != nil {
					t.Fatalf("watch again after the failover: %v", err)
				}
				continue
			}
			if c.Service == "watched" {
				t.Logf("watch delivered %+v after the failover", c)
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch opened before the failover never delivered a change made after it")
		}
	}
}

// expectChange waits for service's change (other services' changes, such as
// a registered route's, may come first).
func expectChange(t *testing.T, ch <-chan registry.Change, service string, version int64) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case c := <-ch:
			if c.Service != service {
				continue
			}
			if c.Version != version {
				t.Fatalf("change %+v, want %s v%d", c, service, version)
			}
			return
		case <-deadline:
			t.Fatalf("no change of %s received", service)
		}
	}
}
