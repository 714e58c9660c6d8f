package registry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// RunExpiry removes an ended lease on its own, and only while active.
func TestRunExpiryRemovesEndedLeasesWhileActive(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := registry.NewStore(rs.Client(), registry.Options{Now: clock})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := s.PutInstance(ctx, "svc", registry.Instance{ID: "a", Address: "a:80", Weight: 1, TTLSeconds: 5}); err != nil {
		t.Fatal(err)
	}
	// Each pass asks gate whether to run; the send of the next answer
	// returns only once the previous pass has finished.
	gate := make(chan bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunExpiry(ctx, time.Millisecond, func() bool {
			select {
			case v := <-gate:
				return v
			case <-ctx.Done():
				return false
			}
		}, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	instances := func() int {
		svc, err := s.GetService(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		return len(svc.Instances)
	}
	gate <- false
	gate <- false
	if n := instances(); n != 1 {
		t.Fatalf("inactive expiry removed the lease: %d instances", n)
	}
	gate <- true
	gate <- false
	if n := instances(); n != 0 {
		t.Fatalf("ended lease not removed: %d instances", n)
	}
}
