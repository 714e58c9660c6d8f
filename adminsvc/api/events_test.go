package api

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// TestHubDropsSlowStreamsOnly: a stream that stops reading is ended once
// its buffer is full; the others keep every change. Past the cap: refused.
func TestHubDropsSlowStreamsOnly(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHub(base, registry.NewStore(rdb, registry.Options{Prefix: "sr"}), 2)
	slow, unsubSlow, err := h.subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer unsubSlow()
	fast, unsubFast, err := h.subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer unsubFast()
	if _, _, err := h.subscribe(); !errors.Is(err, errTooManyStreams) {
		t.Fatalf("third stream with a cap of 2: %v", err)
	}
	const n = subscriberBuffer + 20
	ctx, cancelPub := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelPub()
	// Each change is published once the fast stream has the one before:
	// with a free-running publisher, a reader descheduled for a few
	// milliseconds (other packages' tests on 2 cores) fell 64 behind and
	// was dropped as slow, which is the hub's rule working, not this test's
	// case.
	for i := 1; i <= n; i++ {
		if err := rdb.Publish(ctx, "sr:v1:changes", fmt.Sprintf("%d svc", i)).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case c, ok := <-fast:
			if !ok || c.Version != int64(i) {
				t.Fatalf("fast stream: change %d: %+v %v", i, c, ok)
			}
		case <-ctx.Done():
			t.Fatalf("fast stream got %d of %d changes", i-1, n)
		}
	}
	got := 0
	for range slow {
		got++
	}
	if got != subscriberBuffer {
		t.Fatalf("slow stream delivered %d before being dropped, want %d", got, subscriberBuffer)
	}
	if h.streams() != 1 {
		t.Fatalf("%d streams left, want 1", h.streams())
	}
}
