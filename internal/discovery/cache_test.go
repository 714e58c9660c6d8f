package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/discovery"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

type env struct {
	srv   *redistest.Server
	rdb   *redis.Client
	store *registry.Store
}

func newEnv(t testing.TB) *env {
	srv := redistest.Start(t, redistest.Options{})
	// The test's own client (writes, and the cache's loads): 2 s timeouts,
	// since 200 ms ran out on a loaded CI machine (2 cores, -race) and
	// failed a put; no test here waits on them (a dead Redis refuses at
	// once, and the down test builds its own client).
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 2 * time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return &env{srv: srv, rdb: rdb, store: registry.NewStore(rdb, registry.Options{})}
}

func (e *env) put(t testing.TB, svc, id string, weight int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.store.PutInstance(ctx, svc, registry.Instance{ID: id, Address: id + ":80", Weight: weight}); err != nil {
		t.Fatal(err)
	}
}

func newCache(t testing.TB, src discovery.Source, o discovery.Options) *discovery.Cache {
	c := discovery.New(src, o)
	t.Cleanup(c.Close)
	return c
}

func get(t testing.TB, c *discovery.Cache, svc string, maxAge time.Duration) *discovery.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.Get(ctx, svc, maxAge)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitVersion polls the cache (as requests would) until svc reaches version
// v, and returns how long that took.
func waitVersion(t testing.TB, c *discovery.Cache, svc string, v int64, maxAge, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if get(t, c, svc, maxAge).Version >= v {
			return time.Since(start)
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatalf("%s did not reach version %d within %s", svc, v, limit)
	return 0
}

// settle waits until the change feed is subscribed and its
// post-subscription check is done, so later Redis counts are the test's.
func settle(t testing.TB, c *discovery.Cache) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for st := c.Stats(); st.Subscribes == 0 || st.Refreshing != 0; st = c.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("feed never settled: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func TestFeedPropagation(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	c := newCache(t, e.store, discovery.Options{})
	// maxAge of an hour: only the feed can bring changes.
	if s := get(t, c, "api", time.Hour); !s.Found || len(s.Targets) != 1 {
		t.Fatalf("first load: %+v", s)
	}
	var took []time.Duration
	for i := 0; i < 20; i++ {
		e.put(t, "api", fmt.Sprint("b", i), 1)
		v, _ := e.store.ServiceVersion(context.Background(), "api")
		took = append(took, waitVersion(t, c, "api", v, time.Hour, 10*time.Second))
	}
	// Acceptance 5: visible within 50 ms through the feed (maxAge is an
	// hour: nothing else can bring the change). The median is held to it;
	// a single change may wait on the scheduler of a loaded CI machine
	// (230 ms seen at load 37 on 2 cores with -race), so the slowest gets
	// 40x the goal: it still fails a feed that lost the message (the
	// wait then runs to waitVersion's limit). BenchmarkPropagation reports
	// p50/p99 for the speed claim.
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("feed propagation: median %s, max %s", median(took), took[len(took)-1])
	if median(took) > 50*time.Millisecond || took[len(took)-1] > 2*time.Second {
		t.Fatalf("feed propagation too slow: %v", took)
	}
	if got := len(get(t, c, "api", time.Hour).Targets); got != 21 {
		t.Fatalf("targets %d", got)
	}
	if st := c.Stats(); st.Changes == 0 || st.Subscribes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// cutFeed is the real store with a change feed that never delivers.
type cutFeed struct{ *registry.Store }

func (cutFeed) Watch(ctx context.Context) (<-chan registry.Change, error) {
	ch := make(chan registry.Change)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

func TestPollBackstopWhenFeedCut(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	c := newCache(t, cutFeed{e.store}, discovery.Options{})
	const ttl = 200 * time.Millisecond
	get(t, c, "api", ttl)
	var took []time.Duration
	for i := 0; i < 5; i++ {
		e.put(t, "api", fmt.Sprint("b", i), 1)
		v, _ := e.store.ServiceVersion(context.Background(), "api")
		took = append(took, waitVersion(t, c, "api", v, ttl, 3*time.Second))
	}
	t.Logf("poll propagation with ttl %s: %v", ttl, took)
	// Acceptance 5: within cache_ttl_ms + 50 ms, held on the median; a
	// single change delayed by a loaded 2-core machine gets 10x that.
	if median(took) > ttl+50*time.Millisecond {
		t.Fatalf("median change took %s with the feed cut (ttl %s): %v", median(took), ttl, took)
	}
	for _, d := range took {
		if d > ttl+500*time.Millisecond {
			t.Fatalf("change took %s with the feed cut (ttl %s)", d, ttl)
		}
	}
	if c.Stats().Checks == 0 {
		t.Error("no version checks recorded")
	}
}

func TestServesLastSnapshotWhenRedisDies(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	e.put(t, "api", "b", 3)
	var logs testbin.Buffer
	// Timeout 2 s: a killed Redis fails at once (EOF, refused), and a
	// 300 ms bound ran out on a version check right after the restart at
	// load 37, logging a second down/up pair the test counts as a defect.
	c := newCache(t, e.store, discovery.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Timeout: 2 * time.Second})
	const ttl = 20 * time.Millisecond
	want := get(t, c, "api", ttl)
	e.srv.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for !c.Stats().Unavailable && time.Now().Before(deadline) {
		s := get(t, c, "api", ttl)
		if s.Version != want.Version || len(s.Targets) != 2 {
			t.Fatalf("snapshot changed while Redis is down: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
	if !c.Stats().Unavailable {
		t.Fatal("cache never noticed Redis is down")
	}
	for i := 0; i < 200; i++ {
		s := get(t, c, "api", ttl)
		if _, ok := s.Pick(c.Now(), nil); !ok {
			t.Fatal("no pick from the stale snapshot")
		}
		time.Sleep(100 * time.Microsecond)
	}
	st := c.Stats()
	if st.StaleServes < 200 || st.Errors == 0 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "registry unreachable"); n != 1 {
		t.Errorf("logged unreachable %d times, want once:\n%s", n, logs.String())
	}
	// A service never loaded cannot be served.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "never-seen", ttl); !errors.Is(err, discovery.ErrUnavailable) {
		t.Errorf("unknown service while down: %v", err)
	}
	// Redis back (same port): the cache recovers and says so once.
	e.srv.Restart()
	e.put(t, "api", "c", 1)
	v, _ := e.store.ServiceVersion(context.Background(), "api")
	waitVersion(t, c, "api", v, ttl, 5*time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for c.Stats().Unavailable && time.Now().Before(deadline) {
		get(t, c, "api", ttl)
		time.Sleep(time.Millisecond)
	}
	if c.Stats().Unavailable || strings.Count(logs.String(), "reachable again") != 1 {
		t.Errorf("recovery not reported once: %+v\n%s", c.Stats(), logs.String())
	}
}

func TestFirstLoadSingleflight(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	c := newCache(t, e.store, discovery.Options{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, c, "api", time.Hour)
		}()
	}
	wg.Wait()
	if n := c.Stats().Loads; n != 1 {
		t.Fatalf("%d loads for 50 concurrent first requests", n)
	}
	// Unknown services are cached too, and appear when created.
	if s := get(t, c, "later", time.Hour); s.Found || len(s.Targets) != 0 {
		t.Fatalf("unknown service: %+v", s)
	}
	e.put(t, "later", "x", 1)
	waitVersion(t, c, "later", 1, time.Hour, 2*time.Second)
	if s := get(t, c, "later", time.Hour); !s.Found || len(s.Targets) != 1 {
		t.Fatalf("created service: %+v", s)
	}
}

// Zero Redis round trips per request in steady state (acceptance 7).
func TestSteadyStateNoRedisCommands(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	e.put(t, "api", "b", 2)
	c := newCache(t, e.store, discovery.Options{})
	const ttl = time.Second
	get(t, c, "api", ttl)
	settle(t, c)
	e.srv.ResetStats()
	start := time.Now()
	const picks = 10000
	for i := 0; i < picks; i++ {
		s, err := c.Get(context.Background(), "api", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Pick(c.Now(), nil); !ok {
			t.Fatal("no pick")
		}
	}
	elapsed := time.Since(start)
	// hello: the handshake of redistest's own INFO client.
	calls := e.srv.TotalCalls("config|resetstat", "hello")
	t.Logf("%d picks in %s: %d Redis commands (%v)", picks, elapsed, calls, e.srv.CommandCalls())
	// At most one version check per ttl may fall inside the loop.
	allowed := int64(elapsed/ttl) + 1
	if elapsed < ttl {
		allowed = 0
	}
	if calls > allowed {
		t.Fatalf("%d Redis commands for %d picks (allowed %d)", calls, picks, allowed)
	}
}

// lateFeed subscribes only when released, to open the window between the
// first load and a live subscription.
type lateFeed struct {
	*registry.Store
	release chan struct{}
}

func (l lateFeed) Watch(ctx context.Context) (<-chan registry.Change, error) {
	select {
	case <-l.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l.Store.Watch(ctx)
}

// A change made after the first load but before the subscription is live
// is still picked up (without waiting for the poll backstop).
func TestChangeBeforeSubscriptionIsSeen(t *testing.T) {
	e := newEnv(t)
	e.put(t, "api", "a", 1)
	lf := lateFeed{Store: e.store, release: make(chan struct{})}
	c := newCache(t, lf, discovery.Options{})
	get(t, c, "api", time.Hour)
	e.put(t, "api", "b", 1)
	close(lf.release)
	v, _ := e.store.ServiceVersion(context.Background(), "api")
	waitVersion(t, c, "api", v, time.Hour, 2*time.Second)
}

// A Redis that lost its data (restart without persistence, FLUSHALL) and
// whose registry was rebuilt counts versions from 1 again. The cache must
// follow it, both through the feed and through the poll backstop, instead of
// keeping the old snapshot because its version number is higher.
func TestFollowsRegistryRebuiltWithLowerVersions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		src    func(*registry.Store) discovery.Source
		maxAge time.Duration
	}{
		{"feed", func(s *registry.Store) discovery.Source { return s }, time.Hour},
		{"poll", func(s *registry.Store) discovery.Source { return cutFeed{s} }, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for i := 0; i < 5; i++ {
				e.put(t, "api", "old", 1)
			}
			c := newCache(t, tc.src(e.store), discovery.Options{})
			before := get(t, c, "api", tc.maxAge)
			if before.Version < 5 {
				t.Fatalf("setup: version %d", before.Version)
			}
			settle(t, c)
			if err := e.rdb.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			e.put(t, "api", "new", 1) // version 1 again
			deadline := time.Now().Add(5 * time.Second)
			for {
				s := get(t, c, "api", tc.maxAge)
				if len(s.Targets) == 1 && strings.HasPrefix(s.Targets[0].Addr, "new:") {
					if s.Version >= before.Version {
						t.Fatalf("rebuilt snapshot reports version %d, Redis has a lower one", s.Version)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("cache still serves the pre-reset snapshot: %+v", s)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
