package discovery_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/discovery"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// countingSource counts the loads that reach the store.
type countingSource struct {
	*registry.Store
	loads atomic.Int64
}

func (c *countingSource) LoadService(ctx context.Context, name string) (registry.Service, bool, error) {
	c.loads.Add(1)
	return c.Store.LoadService(ctx, name)
}

// TestRedisDownFirstLoadsCostNothing: with an empty cache and Redis
// unreachable, the first request waits at most its own bound; every later
// one fails at once without touching Redis; a background probe notices
// Redis back and first loads work again.
func TestRedisDownFirstLoadsCostNothing(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	e.srv.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: e.srv.Addr, DialTimeout: time.Second, ReadTimeout: time.Second,
		MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	src := &countingSource{Store: registry.NewStore(rdb, registry.Options{})}
	c := newCache(t, src, discovery.Options{ProbeInterval: 50 * time.Millisecond})
	const bound = 20 * time.Millisecond // the plugin's timeout_ms
	get := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		t0 := time.Now()
		_, err := c.Get(ctx, "api", time.Hour)
		return time.Since(t0), err
	}
	if took, err := get(); err == nil || took > 10*bound {
		t.Fatalf("first get with redis down: %s %v", took, err)
	}
	// Wait for the first load to be reported failed (dial refused), then
	// every request must answer at once.
	deadline := time.Now().Add(10 * time.Second)
	for !c.Stats().Unavailable {
		if time.Now().After(deadline) {
			t.Fatal("cache never noticed redis down")
		}
		time.Sleep(time.Millisecond)
	}
	loads := src.loads.Load()
	var slowest time.Duration
	for i := 0; i < 1000; i++ {
		took, err := get()
		// "No wait" is proved by where the error comes from, not by a
		// clock: the known-down path answers before it waits on anything
		// (no load is sent, and the error is not the request's deadline),
		// so a get descheduled under load still passes. The clock only
		// catches a wait of seconds (the expected time is microseconds).
		if err == nil {
			t.Fatal("a get succeeded with redis down")
		}
		if !errors.Is(err, discovery.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
			!strings.Contains(err.Error(), "waiting for the background probe") {
			t.Fatalf("get %d with redis known down: %v, want the immediate ErrUnavailable", i, err)
		}
		slowest = max(slowest, took)
	}
	t.Logf("1000 gets with redis down: slowest %s, loads sent %d", slowest, src.loads.Load()-loads)
	if src.loads.Load() != loads {
		t.Errorf("%d loads reached the dead redis after the first failure, want 0", src.loads.Load()-loads)
	}
	if slowest > time.Second {
		t.Errorf("a get took %s with redis known down, want no wait", slowest)
	}
	e.srv.Restart()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := get(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first loads did not resume after redis came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
