package registry_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/redis/go-redis/v9"
)

func TestInstancesWeightsMaintenanceTags(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: p})
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
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		clk := newClock()
		s := registry.NewStore(rdb, registry.Options{Prefix: p, Now: clk.Now})
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
		if n, _ := rdb.ZCard(c, p+":v1:{_index}:leases").Result(); n != 0 {
			t.Errorf("lease index keeps %d services", n)
		}
		if _, err := s.PutInstance(c, "svc", registry.Instance{ID: "c", Address: "c:80", Weight: 1, TTLSeconds: 5}); err != nil {
			t.Fatal(err)
		}
		due, _ := rdb.ZScore(c, p+":v1:{_index}:leases", "svc").Result()
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
