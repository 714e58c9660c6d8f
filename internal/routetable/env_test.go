package routetable_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/routetable"
)

type env struct {
	srv   *redistest.Server
	rdb   *redis.Client
	store *registry.Store
}

func newEnv(t testing.TB) *env {
	srv := redistest.Start(t, redistest.Options{})
	// 2 s timeouts: a loaded CI machine (2 cores, -race) needs more than
	// the plugin's defaults for the test's own writes.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return &env{srv: srv, rdb: rdb, store: registry.NewStore(rdb, registry.Options{})}
}

func (e *env) register(t testing.TB, host, path, backend string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := e.store.RegisterRoute(ctx, registry.Route{Host: host, Path: path, Backend: backend}); err != nil {
		t.Fatalf("register %s%s: %v", host, path, err)
	}
}

func (e *env) deregister(t testing.TB, host, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.store.DeregisterRoute(ctx, host, path); err != nil {
		t.Fatalf("deregister %s%s: %v", host, path, err)
	}
}

// registerMany registers n routes h<i>.example.com/p<i> with 16 writers.
func (e *env) registerMany(t testing.TB, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, _, err := e.store.RegisterRoute(ctx, registry.Route{Host: fmt.Sprintf("h%d.example.com", i),
					Path: fmt.Sprintf("/p%d", i), Backend: fmt.Sprintf("http://b%d.internal:8080", i)})
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func newTable(t testing.TB, src routetable.Source, o routetable.Options) *routetable.Table {
	tb := routetable.New(src, o)
	t.Cleanup(tb.Close)
	return tb
}

func wait(t testing.TB, tb *routetable.Table) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every millisecond until it holds and returns how
// long that took; it fails the test after limit.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not true after %s", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// gate holds new connections back while shut.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) shut() { g.mu.Lock(); g.open = make(chan struct{}); g.mu.Unlock() }
func (g *gate) lift() { g.mu.Lock(); close(g.open); g.mu.Unlock() }

func (g *gate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// deaf is a Source whose change feed never carries the given services:
// what a message lost on a live connection looks like.
type deaf struct {
	*registry.Store
	mu   sync.Mutex
	deaf map[string]bool
}

func (d *deaf) ignore(service string) {
	d.mu.Lock()
	d.deaf[service] = true
	d.mu.Unlock()
}

func (d *deaf) Watch(ctx context.Context) (<-chan registry.Change, error) {
	in, err := d.Store.Watch(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan registry.Change, 256)
	go func() {
		defer close(out)
		for c := range in {
			d.mu.Lock()
			skip := d.deaf[c.Service]
			d.mu.Unlock()
			if !skip {
				out <- c
			}
		}
	}()
	return out, nil
}

// waitSubscribers polls PUBSUB NUMSUB of the change channel until it is n.
func waitSubscribers(t *testing.T, e *env, n int64) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := e.rdb.PubSubNumSub(context.Background(), e.store.Channel()).Result()
		if err == nil && m[e.store.Channel()] == n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers never reached %d: %v %v", n, m, err)
		}
		time.Sleep(time.Millisecond)
	}
}
