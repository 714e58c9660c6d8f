package ratelimit

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// countingClient counts script calls per rate-limit key (KEYS[1]). With
// now set it also serializes the calls and stamps each with the fake clock
// as it is sent: Redis' TIME only moves forward in the order scripts run,
// and concurrent callers (background lease fetches) stamping their own
// "now" before queueing would break that order, which no real Redis does.
// The mutex is shared by the nodes' clients: it stands for Redis' own
// one-script-at-a-time order.
type countingClient struct {
	Client
	mu   sync.Mutex
	n    map[string]int
	now  func() int64
	call *sync.Mutex // shared by every node's client: one Redis, one order
}

func (c *countingClient) count(keys []string) {
	if len(keys) == 0 {
		// The background probe's "return 1" (Redis was down) decides no
		// key's request: not a cost of rate limiting a key.
		return
	}
	k := keys[0]
	if i := strings.Index(k, "{rl:"); i >= 0 {
		k = k[i+4 : strings.IndexByte(k, '}')]
	}
	c.mu.Lock()
	c.n[k]++
	c.mu.Unlock()
}

func (c *countingClient) stamp(args []any) func() {
	if c.now == nil {
		return func() {}
	}
	c.call.Lock()
	args[1] = c.now()
	return c.call.Unlock
}

func (c *countingClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	c.count(keys)
	defer c.stamp(args)()
	return c.Client.EvalSha(ctx, sha, keys, args...)
}

func (c *countingClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	c.count(keys)
	defer c.stamp(args)()
	return c.Client.Eval(ctx, script, keys, args...)
}

// maxRolling is the most admissions in any window [t, t+period) that
// starts at an admission, over sorted timestamps.
func maxRolling(ts []int64, period int64) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	most, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j] < ts[i]+period {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

// TestLeasesThreeNodesBound drives 3 limiters (3 Kong nodes, own clients)
// sharing one real redis-server through 60 s of mixed traffic on one fake
// clock (injected into the nodes and, through RedisNow, into the script):
// a hot key far over its limit, a busy key under its limit, and cold keys
// near theirs. Every rolling window that starts at an admission holds at
// most limit + burst, summed over the nodes; the hot key still gets at
// least the documented share of its limit (under-admission bound), and the
// busy key costs at most 0.05 Redis calls per admitted request while cold
// keys cost at most 1.
func TestLeasesThreeNodesBound(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	var clock fakeClock
	clock.ns.Store(1_700_000_000 * int64(time.Second))
	redisNow := func() int64 { return clock.ns.Load() / 1000 }
	type lim struct {
		limits []Limit
		perMs  float64 // requests per ms per node
	}
	keys := map[string]lim{
		"hot":  {[]Limit{PerSecond(100, 10)}, 0.08},                   // 240/s offered against 100/s
		"busy": {[]Limit{PerMinute(60000, 100)}, 0.2},                 // 600/s offered, under 1000/s
		"both": {[]Limit{PerSecond(50, 5), PerMinute(2400, 0)}, 0.03}, // the minute limit binds
	}
	const cold = 30
	coldLimits := []Limit{PerSecond(2, 1)}
	var nodes []*Limiter
	var clients []*countingClient
	var order sync.Mutex
	for i := 0; i < 3; i++ {
		// No go-redis retries, as the plugin's clients: a retried script
		// would go out again with the "now" stamped for the first try, which
		// the injected clock cannot tell from Redis' clock running backwards
		// (with Redis TIME a retry reads a fresh time and is safe).
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		cc := &countingClient{Client: rdb, n: map[string]int{}, now: redisNow, call: &order}
		clients = append(clients, cc)
		l := New(cc, Options{Logger: quiet(), Timeout: 5 * time.Second, Policy: FailClosed,
			Now: clock.Now, RedisNow: redisNow})
		// Before the client closes (cleanups run last first): a lease
		// fetch still under way would fail on the closed client and
		// start a probe that outlives the test.
		t.Cleanup(l.Close)
		nodes = append(nodes, l)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	admitted := map[string][]int64{}
	offered := map[string]int{}
	ctx := context.Background()
	try := func(n *Limiter, key string, limits []Limit) {
		offered[key]++
		r, err := n.Allow(ctx, key, limits)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if r.Allowed {
			admitted[key] = append(admitted[key], clock.ns.Load())
		}
	}
	const ms = 60_000
	for step := 0; step < ms; step++ {
		clock.Add(time.Millisecond)
		for _, n := range nodes {
			for _, k := range []string{"hot", "busy", "both"} {
				if rng.Float64() < keys[k].perMs {
					try(n, k, keys[k].limits)
				}
			}
			if rng.Float64() < 0.01 {
				try(n, "cold-"+string(rune('a'+rng.IntN(cold))), coldLimits)
			}
		}
	}
	for _, n := range nodes {
		n.Close() // lease fetches under way finish and count
	}
	calls := map[string]int{}
	for _, c := range clients {
		c.mu.Lock()
		for k, v := range c.n {
			calls[k] += v
		}
		c.mu.Unlock()
	}
	check := func(key string, limits []Limit) {
		for _, l := range limits {
			if got := maxRolling(admitted[key], int64(l.Period)); got > l.Rate+l.Burst {
				t.Errorf("%s: %d admitted in one rolling %s, limit %d + burst %d", key, got, l.Period, l.Rate, l.Burst)
			}
		}
	}
	for k, v := range keys {
		check(k, v.limits)
	}
	var coldAdmitted, coldCalls int
	for k := range admitted {
		if strings.HasPrefix(k, "cold-") {
			check(k, coldLimits)
			coldAdmitted += len(admitted[k])
			coldCalls += calls[k]
		}
	}
	sec := float64(ms) / 1000
	hot := len(admitted["hot"])
	t.Logf("hot: offered %d admitted %d (%.1f/s of 100/s) calls %d; busy: offered %d admitted %d calls %d (%.4f per admitted); both: admitted %d calls %d; cold: admitted %d calls %d",
		offered["hot"], hot, float64(hot)/sec, calls["hot"], offered["busy"], len(admitted["busy"]), calls["busy"],
		float64(calls["busy"])/float64(len(admitted["busy"])), len(admitted["both"]), calls["both"], coldAdmitted, coldCalls)
	// Under-admission bound (doc.go): the rate is Rate per 1.04 Period, less
	// the units of leases that expire unspent; at least 90 % of the limit.
	if float64(hot) < 0.9*100*sec {
		t.Errorf("hot key admitted %d in %.0f s, want >= 90%% of 100/s", hot, sec)
	}
	if got := len(admitted["busy"]); got != offered["busy"] {
		t.Errorf("busy key under its limit: %d of %d admitted", got, offered["busy"])
	}
	if per := float64(calls["busy"]) / float64(len(admitted["busy"])); per > 0.05 {
		t.Errorf("busy key: %.3f redis calls per admitted request, want <= 0.05", per)
	}
	if coldAdmitted == 0 || coldCalls > sumPrefix(offered, "cold-") {
		t.Errorf("cold keys: %d calls for %d requests (%d admitted), want <= 1 per request", coldCalls, sumPrefix(offered, "cold-"), coldAdmitted)
	}
}

func sumPrefix(m map[string]int, prefix string) int {
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}
