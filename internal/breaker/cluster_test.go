package breaker

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// node is one Kong node: its own client, its own Breakers, its sync loop.
func node(t *testing.T, c Client, s Settings) *Breakers {
	t.Helper()
	// The default 200 ms sync; a round trip may take longer than the default
	// 100 ms timeout on a loaded 2-core machine running tests with -race,
	// and a sync that times out only delays what these tests measure.
	b, err := New(Options{Settings: s, Redis: c, Logger: quiet(), SyncTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func nodes(t *testing.T, addr string, s Settings) []*Breakers {
	var out []*Breakers
	for i := 0; i < 3; i++ {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		out = append(out, node(t, c, s))
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testbin.WaitFor(t, d, what, cond)
}

// afterSyncs waits until every node has completed n more successful syncs
// than when called. The deadline only catches a hang.
func afterSyncs(t *testing.T, ns []*Breakers, n int64) {
	t.Helper()
	ok := func(b *Breakers) int64 { st := b.Stats(); return st.Syncs - st.SyncFailures }
	start := make([]int64, len(ns))
	for i, b := range ns {
		start[i] = ok(b)
	}
	waitFor(t, 10*time.Second, "syncs", func() bool {
		for i, b := range ns {
			if ok(b) < start[i]+n {
				return false
			}
		}
		return true
	})
}

// withinSyncs checks what the cluster sync promises in sync rounds, not wall
// time (a loaded 2-core machine stretches both alike): once node from has
// completed two more successful syncs, the second began after its news (a
// trip, a probe's success) and delivered it; once every node has completed
// two more, the second began after the cluster had the news, and cond must
// hold. It returns the wall time taken, for the log.
func withinSyncs(t *testing.T, ns []*Breakers, from *Breakers, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	afterSyncs(t, []*Breakers{from}, 2)
	afterSyncs(t, ns, 2)
	if !cond() {
		t.Fatalf("%s: not within two syncs of every node (%s)", what, time.Since(start))
	}
	return time.Since(start)
}

// allLearnedOpen holds once every node has reported addr not closed: each
// has learned of the open period, though with a short OpenTimeout the first
// ones may be half-open before the last one has heard (a loaded machine), so
// "Open on all at once" would depend on timing.
func allLearnedOpen(ns []*Breakers, addr string) func() bool {
	seen := make([]bool, len(ns))
	return func() bool {
		all := true
		for i, n := range ns {
			seen[i] = seen[i] || n.State(addr) != Closed
			all = all && seen[i]
		}
		return all
	}
}

func allState(ns []*Breakers, addr string, s State) func() bool {
	return func() bool {
		for _, n := range ns {
			if n.State(addr) != s {
				return false
			}
		}
		return true
	}
}

// A backend that starts failing on one node is open on all three by the
// first sync each makes after the trip reached Redis (about one sync
// interval: the wall time is logged); recovery through one probe closes it
// everywhere as fast.
func TestClusterOpensEverywhereAndRecovers(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ns := nodes(t, s.Addr, Settings{FailureThreshold: 5, OpenTimeout: 300 * time.Millisecond})
	const addr = "10.0.0.1:8080"
	for _, n := range ns { // every node knows the instance (it served it)
		call(t, n, addr, Success)
	}
	for i := 0; i < 5; i++ {
		if err := call(t, ns[0], addr, Failure); err != nil {
			t.Fatal(err)
		}
	}
	if ns[0].State(addr) != Open {
		t.Fatal("not open on the failing node")
	}
	d := withinSyncs(t, ns, ns[0], "open on all 3 nodes", allLearnedOpen(ns, addr))
	t.Logf("open on all nodes %s after the threshold crossing", d)

	// After the open period one node gets the probe, its success closes all.
	var probe Ticket
	var prober *Breakers
	waitFor(t, 3*time.Second, "a probe admitted", func() bool {
		for _, n := range ns {
			if tk, err := n.Allow(addr); err == nil {
				probe, prober = tk, n
				return true
			}
		}
		return false
	})
	probe.Done(Success)
	withinSyncs(t, ns, prober, "closed on all 3 nodes", allState(ns, addr, Closed))
}

// Failures spread over the nodes, none reaching the threshold alone, add up
// in Redis and open the instance everywhere.
func TestClusterCountsAddUp(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ns := nodes(t, s.Addr, Settings{FailureThreshold: 5, FailureRatio: 0.9, MinCalls: 1000, OpenTimeout: time.Minute})
	const addr = "10.0.0.2:8080"
	for _, n := range ns {
		for i := 0; i < 2; i++ {
			call(t, n, addr, Failure)
		}
		if n.State(addr) != Closed {
			t.Fatal("2 failures opened a node alone")
		}
		// Let this node's sync deliver before the next one fails: the
		// cluster sees 2, 4, 6 consecutive failures.
		afterSyncs(t, []*Breakers{n}, 2)
	}
	withinSyncs(t, ns, ns[2], "open on all nodes from shared counts", allState(ns, addr, Open))
}

// Half-open lets at most HalfOpenMaxCalls probes through across the cluster.
func TestClusterHalfOpenBudget(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	const max = 2
	ns := nodes(t, s.Addr, Settings{FailureThreshold: 1, OpenTimeout: time.Second, HalfOpenMaxCalls: max})
	const addr = "10.0.0.3:8080"
	for _, n := range ns {
		call(t, n, addr, Success)
	}
	call(t, ns[0], addr, Failure)
	withinSyncs(t, ns, ns[0], "open everywhere", allLearnedOpen(ns, addr))
	// Every node tries hard for 2.5 s (the open second, then several sync
	// rounds of half-open); no outcome is reported, so the period never
	// resolves.
	var admitted atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(2500 * time.Millisecond)
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := n.Allow(addr); err == nil {
					admitted.Add(1)
				} else if !errors.Is(err, ErrOpen) {
					t.Error(err)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got == 0 || got > max {
		t.Fatalf("%d probes admitted cluster-wide, want 1..%d", got, max)
	}
	t.Logf("%d probes admitted cluster-wide (max %d)", admitted.Load(), max)
}

// Redis down: every node keeps breaking locally, and recovers locally.
func TestClusterRedisDownBreaksLocally(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ns := nodes(t, s.Addr, Settings{FailureThreshold: 3, OpenTimeout: 200 * time.Millisecond})
	const addr = "10.0.0.4:8080"
	for _, n := range ns {
		call(t, n, addr, Success)
	}
	s.Kill()
	waitFor(t, 2*time.Second, "syncs failing", func() bool { return ns[1].Stats().SyncFailures > 0 })
	for i := 0; i < 3; i++ {
		call(t, ns[1], addr, Failure)
	}
	if ns[1].State(addr) != Open || ns[0].State(addr) != Closed {
		t.Fatalf("local trip: node1 %s node0 %s", ns[1].State(addr), ns[0].State(addr))
	}
	var probe Ticket
	waitFor(t, 2*time.Second, "a local probe", func() bool {
		tk, err := ns[1].Allow(addr)
		probe = tk
		return err == nil
	})
	probe.Done(Success)
	if ns[1].State(addr) != Closed {
		t.Fatal("local probe did not close")
	}
}

// The sync pipeline spans the slots of a 3-master Redis Cluster.
func TestClusterModeRedis(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	var ns []*Breakers
	for i := 0; i < 3; i++ {
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = cc.Close() })
		ns = append(ns, node(t, cc, Settings{FailureThreshold: 2, OpenTimeout: time.Minute}))
	}
	addrs := []string{"10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80", "10.1.0.4:80", "10.1.0.5:80", "10.1.0.6:80"}
	for _, a := range addrs {
		for _, n := range ns {
			call(t, n, a, Success)
		}
	}
	for _, a := range addrs[:3] {
		call(t, ns[0], a, Failure)
		call(t, ns[0], a, Failure)
	}
	withinSyncs(t, ns, ns[0], "open on all nodes", func() bool {
		for _, a := range addrs[:3] {
			if !allState(ns, a, Open)() {
				return false
			}
		}
		return true
	})
	for _, a := range addrs[3:] {
		if !allState(ns, a, Closed)() {
			t.Fatalf("%s opened", a)
		}
	}
	if d, all := ns[2].AllOpen(addrs[:3]); !all || d <= 0 {
		t.Fatalf("AllOpen %s %v", d, all)
	}
}

// Nodes without traffic for an instance do not take its probe budget.
func TestClusterIdleNodesLeaveTheProbe(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ns := nodes(t, s.Addr, Settings{FailureThreshold: 1, OpenTimeout: 300 * time.Millisecond, HalfOpenMaxCalls: 1})
	const addr = "10.0.0.5:8080"
	for _, n := range ns {
		call(t, n, addr, Success)
	}
	call(t, ns[1], addr, Failure)
	withinSyncs(t, ns, ns[1], "open everywhere", allLearnedOpen(ns, addr))
	// Only node 0 has traffic; nodes 1 and 2 keep syncing but never ask.
	var probe Ticket
	waitFor(t, 2*time.Second, "node 0 gets the probe", func() bool {
		tk, err := ns[0].Allow(addr)
		probe = tk
		return err == nil
	})
	probe.Done(Success)
	withinSyncs(t, ns, ns[0], "closed everywhere", allState(ns, addr, Closed))
}

// 1 % random failures over 10 000 calls spread across three syncing nodes
// never open the instance (seeded RNG).
func TestClusterLowErrorRateNeverOpens(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ns := nodes(t, s.Addr, Settings{FailureRatio: 0.5}) // 5 consecutive, or 50 % of ≥ 10 calls over 10 s
	const addr = "10.0.0.6:8080"
	rng := rand.New(rand.NewSource(7))
	fails := 0
	for i := 0; i < 10000; i++ {
		o := Success
		if rng.Float64() < 0.01 {
			o = Failure
			fails++
		}
		n := ns[i%3]
		if err := call(t, n, addr, o); err != nil {
			t.Fatalf("call %d refused after %d failures: %v", i, fails, err)
		}
		if i%10 == 9 {
			time.Sleep(time.Millisecond) // spread the calls over several syncs
		}
	}
	syncs := ns[0].Stats().Syncs
	waitFor(t, 2*time.Second, "a last sync", func() bool { return ns[0].Stats().Syncs > syncs })
	if !allState(ns, addr, Closed)() {
		t.Fatal("opened at 1 % errors")
	}
	if fails < 50 || ns[0].Stats().Syncs < 2 {
		t.Fatalf("%d failures over %d syncs: the test tests nothing", fails, ns[0].Stats().Syncs)
	}
	t.Logf("%d failures in 10000 calls over %d syncs: closed everywhere", fails, ns[0].Stats().Syncs)
}

// Redis losing its data while an instance is open does not keep it shut.
func TestClusterRedisLosesState(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ns := nodes(t, s.Addr, Settings{FailureThreshold: 1, OpenTimeout: 300 * time.Millisecond})
	const addr = "10.0.0.7:8080"
	for _, n := range ns {
		call(t, n, addr, Success)
	}
	call(t, ns[0], addr, Failure)
	withinSyncs(t, ns, ns[0], "open everywhere", allLearnedOpen(ns, addr))
	if err := s.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "usable again on every node", func() bool {
		for _, n := range ns {
			if n.Skip(addr) {
				return false
			}
		}
		return true
	})
}
