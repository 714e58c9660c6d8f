package breaker

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// ReadStates sees what the sync script wrote: an instance tripped on a node
// reads Open once that node synced, HalfOpen once the open period is over by
// Redis' clock, and an address nobody recorded reads Closed.
func TestReadStatesSeesTheSyncedState(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	const open = 500 * time.Millisecond
	b, err := New(Options{Settings: Settings{FailureThreshold: 2, OpenTimeout: open}, Redis: c, Scope: "orders", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	const addr, other = "10.0.0.1:8080", "10.0.0.2:8080"
	for i := 0; i < 2; i++ {
		if err := call(t, b, addr, Failure); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.SyncOnce(ctx)
	read := func() []State {
		st, err := ReadStates(ctx, c, "", "orders", []string{addr, other})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	start := time.Now()
	if st := read(); st[1] != Closed || (st[0] != Open && time.Since(start) < open) {
		t.Fatalf("states %v, want [open closed]", st)
	}
	waitFor(t, 10*time.Second, "half-open after the open period", func() bool { return read()[0] == HalfOpen })
	if st, err := ReadStates(ctx, c, "", "other-scope", []string{addr}); err != nil || st[0] != Closed {
		t.Fatalf("another scope: %v %v", st, err)
	}
}
