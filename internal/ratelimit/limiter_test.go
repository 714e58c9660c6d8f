package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// newClient is a client as the plugin should build it: context deadlines
// bound every call.
func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// steadyLimiter is a limiter for tests about decisions, not failures: a
// generous timeout (2 cores shared with other test processes can stall a
// 20ms call) and FailClosed, so Redis trouble shows up as an error instead
// of a fail-open admission the test would misread as a wrong decision.
func steadyLimiter(t testing.TB, s *redistest.Server) *Limiter {
	return New(newClient(t, s.Addr), Options{Logger: quiet(), Timeout: 2 * time.Second, Policy: FailClosed})
}

// fakeClock is a settable local clock; Redis keeps its own real time.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock           { c := &fakeClock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func evalCalls(s *redistest.Server) int64 {
	c := s.CommandCalls()
	return c["evalsha"] + c["eval"]
}

func TestAllowAllOrNothingAndResults(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	l := steadyLimiter(t, s)
	ctx := context.Background()
	// 3 per second (burst 2 → 3 at once), 4 per minute (burst 0 → 1 at once... so burst 3).
	limits := []Limit{PerSecond(3, 2), PerMinute(4, 3)}
	var allowed int
	for i := 0; i < 3; i++ {
		r, err := l.Allow(ctx, "k1", limits)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Allowed || r.Source != SourceRedis {
			t.Fatalf("request %d: %+v", i, r)
		}
		allowed++
		ps := r.Periods()
		if got, want := ps[0].Remaining, 2-i; got != want {
			t.Fatalf("request %d: second remaining %d, want %d", i, got, want)
		}
		if got, want := ps[1].Remaining, 3-i; got != want {
			t.Fatalf("request %d: minute remaining %d, want %d", i, got, want)
		}
	}
	// The 4th is denied by the per-second limit only...
	r, err := l.Allow(ctx, "k1", limits)
	if err != nil || r.Allowed {
		t.Fatalf("4th: %+v %v", r, err)
	}
	ps := r.Periods()
	if ps[0].RetryAfter <= 0 || ps[0].RetryAfter > time.Duration(limits[0].interval())*time.Microsecond || ps[1].RetryAfter != 0 {
		t.Fatalf("4th retry-after: %+v", ps)
	}
	// ...and consumed nothing of the minute limit: wait out the per-second
	// limit (poll the Redis-side state, not a sleep length) and the minute
	// limit still has exactly one left.
	deadline := time.Now().Add(3 * time.Second)
	for {
		l.deny = newDenyCache(16) // look at Redis, not the cache
		r, err = l.Allow(ctx, "k1", limits)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("per-second limit never refilled")
		}
		time.Sleep(r.RetryAfter())
	}
	if got := r.Periods()[1].Remaining; got != 0 {
		t.Fatalf("minute remaining after the 4th admission: %d, want 0 (the denial consumed nothing)", got)
	}
	r, err = l.Allow(ctx, "k1", limits)
	if err != nil || r.Allowed {
		t.Fatalf("minute limit exhausted but admitted: %+v %v", r, err)
	}
	if r.Periods()[1].RetryAfter < 10*time.Second {
		t.Fatalf("minute retry-after %s, want ~15s", r.Periods()[1].RetryAfter)
	}
	// Other keys are independent.
	if r, err := l.Allow(ctx, "k2", limits); err != nil || !r.Allowed {
		t.Fatalf("k2 denied: %+v %v", r, err)
	}
}

// TestExportedBoundsAreEnforceable: the bounds a schema takes from this
// package are exactly the limits the limiter accepts.
func TestExportedBoundsAreEnforceable(t *testing.T) {
	for _, l := range []Limit{PerSecond(MaxPerSecond, MaxBurst), PerMinute(MaxPerMinute, MaxBurst), PerMinute(1, MaxBurst)} {
		if err := l.validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
}

func TestInvalidLimits(t *testing.T) {
	l := New(nil, Options{Logger: quiet()})
	for _, ls := range [][]Limit{nil, {{Rate: 0, Period: time.Second}}, {{Rate: 1, Period: time.Second, Burst: -1}},
		{{Rate: 2_000_000, Period: time.Second}}, make([]Limit, MaxLimits+1),
		{PerSecond(MaxPerSecond+1, 0)}, {PerMinute(MaxPerMinute+1, 0)}, {PerMinute(1, MaxBurst+1)}} {
		if _, err := l.Allow(context.Background(), "k", ls); !errors.Is(err, ErrInvalidLimit) {
			t.Fatalf("%v: err %v", ls, err)
		}
	}
}

func TestDenyCacheSpendsNoRedisCalls(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	clock := newFakeClock()
	l := New(newClient(t, s.Addr), Options{Now: clock.Now, Logger: quiet()})
	ctx := context.Background()
	limits := []Limit{{Rate: 1, Period: 10 * time.Second}}
	if r, _ := l.Allow(ctx, "k", limits); !r.Allowed {
		t.Fatal("first denied")
	}
	r, _ := l.Allow(ctx, "k", limits)
	if r.Allowed || r.Source != SourceRedis {
		t.Fatalf("second: %+v", r)
	}
	before := evalCalls(s)
	for i := 0; i < 100; i++ {
		clock.Add(50 * time.Millisecond) // 5 s in all, inside the retry-after
		r, _ := l.Allow(ctx, "k", limits)
		if r.Allowed || r.Source != SourceCache {
			t.Fatalf("cached denial %d: %+v", i, r)
		}
	}
	if got := evalCalls(s) - before; got != 0 {
		t.Fatalf("%d script calls for cached denials, want 0", got)
	}
	if got := r.RetryAfter(); got > time.Duration(limits[0].interval())*time.Microsecond || got < 9*time.Second {
		t.Fatalf("retry-after from redis %s", got)
	}
	clock.Add(6 * time.Second) // past the retry-after on the local clock
	r, _ = l.Allow(ctx, "k", limits)
	if r.Source != SourceRedis {
		t.Fatalf("after retry-after: source %s, want redis", r.Source)
	}
	if st := l.Stats(); st.CacheHits != 100 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNoScriptLoadsOnce(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	l := steadyLimiter(t, s)
	limits := []Limit{PerSecond(100, 0)}
	for i := 0; i < 10; i++ {
		if _, err := l.Allow(context.Background(), fmt.Sprint("k", i), limits); err != nil {
			t.Fatal(err)
		}
	}
	c := s.CommandCalls()
	if c["eval"] != 1 || c["evalsha"] != 10 {
		t.Fatalf("eval %d evalsha %d, want 1 and 10", c["eval"], c["evalsha"])
	}
}

func TestKeys(t *testing.T) {
	cases := []struct {
		by    LimitBy
		value string
		want  string
	}{
		{ByService, "orders", "p1:service:orders"},
		{ByIP, "10.0.0.1", "p1:ip:10.0.0.1"},
		{ByHeader, "a:b{c}%", "p1:header:a%3Ab%7Bc%7D%25"},
	}
	for _, c := range cases {
		if got := Key("p1", c.by, c.value); got != c.want {
			t.Errorf("Key(%s,%q) = %q, want %q", c.by, c.value, got, c.want)
		}
	}
	long := Key("p1", ByHeader, string(make([]byte, 1000)))
	if len(long) > 64 {
		t.Errorf("long value not hashed: %d bytes", len(long))
	}
	if got := redisKey("sr", "p1:ip:1.2.3.4", PerMinute(1, 0)); got != "sr:v1:{rl:p1:ip:1.2.3.4}:m" {
		t.Errorf("redisKey = %q", got)
	}
	if _, err := ParseLimitBy("bogus"); err == nil {
		t.Error("bogus limit_by accepted")
	}
}

// TestClusterOneSlotPerRequest runs the script on a 3-master Redis Cluster:
// every limit of a request lives in one slot, so no CROSSSLOT, and keys
// spread over the masters.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = cc.Close() })
	l := New(cc, Options{Logger: quiet(), Timeout: time.Second})
	ctx := context.Background()
	limits := []Limit{PerSecond(5, 0), PerMinute(3, 2)}
	masters := map[string]bool{}
	for i := 0; i < 20; i++ {
		key := Key("svc", ByIP, fmt.Sprintf("10.0.0.%d", i))
		var admitted int
		for j := 0; j < 5; j++ {
			r, err := l.Allow(ctx, key, limits)
			if err != nil {
				t.Fatalf("key %s: %v", key, err)
			}
			if r.Allowed {
				admitted++
			}
		}
		if admitted != 1 { // burst 0 per second: one at once
			t.Fatalf("key %s admitted %d of 5, want 1", key, admitted)
		}
		m, err := cl.MasterFor(t, redisKey("sr", key, limits[0]))
		if err != nil {
			t.Fatal(err)
		}
		m2, _ := cl.MasterFor(t, redisKey("sr", key, limits[1]))
		if m != m2 {
			t.Fatalf("limits of %s on two masters", key)
		}
		masters[m.Addr] = true
	}
	if len(masters) < 2 {
		t.Fatalf("20 keys all on %v", masters)
	}
}

// fixedWindow is the baseline people write first: INCR + EXPIRE per
// window of the caller's clock. It admits up to 2× across a boundary.
type fixedWindow struct {
	c     *redis.Client
	limit int64
}

func (f *fixedWindow) allow(ctx context.Context, key string, now time.Time) (bool, error) {
	return f.allowPeriod(ctx, key, time.Second, now)
}

func (f *fixedWindow) allowPeriod(ctx context.Context, key string, period time.Duration, now time.Time) (bool, error) {
	k := fmt.Sprintf("fw:{%s}:%d", key, now.UnixNano()/int64(period))
	pipe := f.c.TxPipeline()
	incr := pipe.Incr(ctx, k)
	pipe.Expire(ctx, k, 2*period)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, err
	}
	return incr.Val() <= f.limit, nil
}

type span struct{ start, end time.Time }

// maxInWindow bounds, from the callers' side, how many admissions happened
// inside one rolling window of length w on Redis' clock, where each
// admission is only known to lie within its call [start, end]:
// certain counts the calls entirely inside a window (a lower bound of the
// true peak), possible counts the calls overlapping it (an upper bound).
func maxInWindow(spans []span, w time.Duration) (certain, possible int) {
	var starts []time.Time
	for _, s := range spans {
		starts = append(starts, s.start, s.end, s.start.Add(-w+1))
	}
	for _, a := range starts {
		c, p := 0, 0
		for _, s := range spans {
			if !s.start.Before(a) && s.end.Before(a.Add(w)) {
				c++
			}
			if !s.end.Before(a) && s.start.Before(a.Add(w)) {
				p++
			}
		}
		certain, possible = max(certain, c), max(possible, p)
	}
	return certain, possible
}

// TestAccuracyThreeNodes: 3 limiters with their own clients (3 Kong nodes)
// share one per-second limit. Traffic comes in bursts straddling wall-clock
// second boundaries. GCRA stays within limit+burst in every rolling second;
// the fixed window, fed the same attempts, goes well beyond it.
func TestAccuracyThreeNodes(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	const rate, burst = 20, 5
	limits := []Limit{PerSecond(rate, burst)}
	type node struct {
		l  *Limiter
		fw *fixedWindow
	}
	var nodes []node
	for i := 0; i < 3; i++ {
		c := newClient(t, s.Addr)
		nodes = append(nodes, node{New(c, Options{Logger: quiet(), Timeout: time.Second}), &fixedWindow{c, rate}})
	}
	ctx := context.Background()
	var mu sync.Mutex
	var gcra, fixed []span
	var attempts, errs atomic.Int64
	for round := 0; round < 2; round++ {
		// Start 500 ms before the next wall-clock second, hammer for 1 s.
		now := time.Now()
		next := now.Truncate(time.Second).Add(time.Second)
		if next.Sub(now) < 500*time.Millisecond {
			next = next.Add(time.Second)
		}
		time.Sleep(next.Add(-500 * time.Millisecond).Sub(now)) // shapes traffic; waits for no state
		stop := next.Add(500 * time.Millisecond)
		var wg sync.WaitGroup
		for _, n := range nodes {
			for w := 0; w < 2; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						attempts.Add(1)
						t0 := time.Now()
						r, err := n.l.Allow(ctx, "shared", limits)
						t1 := time.Now()
						ok, ferr := n.fw.allow(ctx, "shared", t0)
						t2 := time.Now()
						if err != nil || ferr != nil {
							errs.Add(1)
							continue
						}
						mu.Lock()
						if r.Allowed {
							gcra = append(gcra, span{t0, t1})
						}
						if ok {
							fixed = append(fixed, span{t1, t2})
						}
						mu.Unlock()
						time.Sleep(time.Millisecond)
					}
				}()
			}
		}
		wg.Wait()
	}
	if errs.Load() > 0 {
		t.Fatalf("%d errors", errs.Load())
	}
	gLow, gHigh := maxInWindow(gcra, time.Second)
	fLow, _ := maxInWindow(fixed, time.Second)
	t.Logf("attempts %d; max admitted in a rolling second: gcra %d..%d, fixed window >= %d (limit %d + burst %d)",
		attempts.Load(), gLow, gHigh, fLow, rate, burst)
	// The upper bound for GCRA: proven within limit+burst, whatever the jitter.
	if gHigh > rate+burst {
		t.Fatalf("gcra may have admitted %d in a rolling second, limit+burst is %d", gHigh, rate+burst)
	}
	g, f := gLow, fLow
	if g < rate/2 {
		t.Fatalf("gcra admitted only %d: the traffic did not reach the limit", g)
	}
	if f < rate+burst+5 {
		t.Fatalf("fixed window admitted %d in a rolling second: the traffic did not show the boundary effect", f)
	}
}

// TestIntervalRoundsUp: the schedule is laid over the period plus twice the
// slack (1.04 s for a per-second limit); with 3/s a truncated interval
// (346666 µs) would fit a fourth request into that span.
func TestIntervalRoundsUp(t *testing.T) {
	l := PerSecond(3, 0)
	if got := l.interval(); got != 346667 {
		t.Fatalf("interval %d", got)
	}
	if 3*l.interval() < time.Second.Microseconds()+2*l.slack() {
		t.Fatal("three intervals fit in the period plus slack")
	}
}

// A denial cached under one set of limits does not answer for others: after
// a config change (here a larger burst) the key goes to Redis at once.
func TestDenyCacheKeyedByLimits(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	l := steadyLimiter(t, s)
	ctx := context.Background()
	small := []Limit{PerMinute(1, 0)}
	for i, want := range []bool{true, false, false} {
		r, err := l.Allow(ctx, "cfg", small)
		if err != nil || r.Allowed != want {
			t.Fatalf("request %d: %+v %v", i, r, err)
		}
	}
	if l.Stats().CacheHits != 1 {
		t.Fatalf("third request not answered by the deny cache: %+v", l.Stats())
	}
	r, err := l.Allow(ctx, "cfg", []Limit{PerMinute(1, 5)})
	if err != nil || !r.Allowed || r.Source != SourceRedis {
		t.Fatalf("after the burst grew: %+v %v", r, err)
	}
}
