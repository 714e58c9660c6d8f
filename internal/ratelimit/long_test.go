package ratelimit

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// maxInWindowFast is maxInWindow for many spans: certain is a lower bound
// (spans that start inside [a, a+w-longest)), possible an upper bound of
// the most admissions in one rolling window w.
func maxInWindowFast(spans []span, w time.Duration) (certain, possible int) {
	if len(spans) == 0 {
		return 0, 0
	}
	starts := make([]int64, len(spans))
	ends := make([]int64, len(spans))
	var longest int64
	for i, s := range spans {
		starts[i], ends[i] = s.start.UnixNano(), s.end.UnixNano()
		longest = max(longest, ends[i]-starts[i])
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	sort.Slice(ends, func(i, j int) bool { return ends[i] < ends[j] })
	before := func(v []int64, x int64) int { return sort.Search(len(v), func(i int) bool { return v[i] >= x }) }
	for i, a := range ends { // possible(a) = starts before a+w - ends before a
		possible = max(possible, before(starts, a+int64(w))-i)
	}
	for i, a := range starts {
		certain = max(certain, before(starts, a+int64(w)-longest)-i)
	}
	return certain, possible
}

// TestLeasesThreeNodesLong (gated: RATELIMIT_LONG=1, RATELIMIT_LONG_SECONDS
// default 60) is the real-time twin of TestLeasesThreeNodesBound: 3 nodes
// (own clients) on one real redis-server, 2 callers each, mixed traffic for
// a minute on Redis' own clock: a hot key over its limit, a busy key under
// its limit, cold keys. The fixed window (INCR+EXPIRE) and redis_rate get
// the same attempts on the hot limit. Admission times are only known to lie
// within each call, so every rolling second is bounded from both sides
// (certain ≤ true peak ≤ possible); a certain count over limit + burst
// fails. Redis round trips per admitted request from INFO commandstats.
func TestLeasesThreeNodesLong(t *testing.T) {
	if os.Getenv("RATELIMIT_LONG") != "1" {
		t.Skip("long real-time run: RATELIMIT_LONG=1 (see BENCHMARKS.md)")
	}
	secs, _ := strconv.Atoi(os.Getenv("RATELIMIT_LONG_SECONDS"))
	if secs <= 0 {
		secs = 60
	}
	s := redistest.Start(t, redistest.Options{})
	hotLim := PerSecond(200, 20)
	busyLim := PerMinute(600000, 100)
	coldLim := PerSecond(2, 1)
	type node struct {
		l  *Limiter
		cc *countingClient
		rr *redis_rate.Limiter
		fw *fixedWindow
	}
	var nodes []node
	for i := 0; i < 3; i++ {
		c := newClient(t, s.Addr)
		cc := &countingClient{Client: c, n: map[string]int{}}
		nodes = append(nodes, node{New(cc, Options{Logger: quiet(), Timeout: time.Second, Policy: FailClosed}),
			cc, redis_rate.NewLimiter(c), &fixedWindow{c, int64(hotLim.Rate)}})
	}
	var mu sync.Mutex
	spans := map[string][]span{}
	offered := map[string]int{}
	record := func(k string, ok bool, t0, t1 time.Time) {
		mu.Lock()
		offered[k]++
		if ok {
			spans[k] = append(spans[k], span{t0, t1})
		}
		mu.Unlock()
	}
	ctx := context.Background()
	stop := time.Now().Add(time.Duration(secs) * time.Second)
	var wg sync.WaitGroup
	var failed error
	for ni, n := range nodes {
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(seed int) {
				defer wg.Done()
				for i := 0; time.Now().Before(stop); i++ {
					var key string
					var limits []Limit
					switch i % 10 {
					case 0, 1, 2, 3, 4:
						key, limits = "hot", []Limit{hotLim}
					case 5, 6, 7:
						key, limits = "busy", []Limit{busyLim}
					default:
						key, limits = fmt.Sprint("cold-", (i*7+seed)%30), []Limit{coldLim}
					}
					t0 := time.Now()
					r, err := n.l.Allow(ctx, key, limits)
					t1 := time.Now()
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
					record(key, r.Allowed, t0, t1)
					if key == "hot" {
						t0 = time.Now()
						rr, err := n.rr.Allow(ctx, "rr-hot", redis_rate.Limit{Rate: hotLim.Rate, Period: time.Second, Burst: hotLim.Burst + 1})
						t1 = time.Now()
						if err == nil {
							record("redis_rate", rr.Allowed > 0, t0, t1)
						}
						t0 = time.Now()
						ok, err := n.fw.allow(ctx, "fw-hot", t0)
						t1 = time.Now()
						if err == nil {
							record("fixed_window", ok, t0, t1)
						}
					}
					time.Sleep(500 * time.Microsecond)
				}
			}(ni*2 + w)
		}
	}
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
	calls := map[string]int{}
	for _, n := range nodes {
		for k, v := range n.cc.n {
			calls[k] += v
		}
	}
	cmds := s.CommandCalls()
	var coldAdmitted, coldOffered, coldCalls int
	worstCold := 0
	for k, sp := range spans {
		if len(k) > 5 && k[:5] == "cold-" {
			coldAdmitted += len(sp)
			coldOffered += offered[k]
			coldCalls += calls[k]
			c, _ := maxInWindowFast(sp, time.Second)
			worstCold = max(worstCold, c)
		}
	}
	hc, hp := maxInWindowFast(spans["hot"], time.Second)
	rc, rp := maxInWindowFast(spans["redis_rate"], time.Second)
	fc, fp := maxInWindowFast(spans["fixed_window"], time.Second)
	bc, bp := maxInWindowFast(spans["busy"], time.Minute)
	t.Logf("%d s, 3 nodes × 2 callers; redis evalsha %d, eval %d, incr %d (all limiters)", secs, cmds["evalsha"], cmds["eval"], cmds["incr"])
	t.Logf("hot 200/s burst 20: ours admitted %d of %d (%.1f/s), rolling second certain %d possible %d, %.3f calls per admitted",
		len(spans["hot"]), offered["hot"], float64(len(spans["hot"]))/float64(secs), hc, hp, float64(calls["hot"])/float64(len(spans["hot"])))
	t.Logf("hot, redis_rate: admitted %d (%.1f/s), rolling second certain %d possible %d, 1 call per decision",
		len(spans["redis_rate"]), float64(len(spans["redis_rate"]))/float64(secs), rc, rp)
	t.Logf("hot, fixed window: admitted %d (%.1f/s), rolling second certain %d possible %d, 1 call per decision",
		len(spans["fixed_window"]), float64(len(spans["fixed_window"]))/float64(secs), fc, fp)
	t.Logf("busy 600000/min: admitted %d of %d, rolling minute certain %d possible %d, %.4f calls per admitted (%d calls)",
		len(spans["busy"]), offered["busy"], bc, bp, float64(calls["busy"])/float64(len(spans["busy"])), calls["busy"])
	t.Logf("cold 2/s burst 1 (30 keys): admitted %d of %d, worst rolling second certain %d, %.3f calls per request",
		coldAdmitted, coldOffered, worstCold, float64(coldCalls)/float64(coldOffered))
	if hc > hotLim.Rate+hotLim.Burst || worstCold > coldLim.Rate+coldLim.Burst || bc > busyLim.Rate+busyLim.Burst {
		t.Errorf("over limit + burst in a rolling window: hot %d, cold %d, busy %d", hc, worstCold, bc)
	}
	if per := float64(calls["busy"]) / float64(len(spans["busy"])); per > 0.05 {
		t.Errorf("busy key: %.3f calls per admitted request, want <= 0.05", per)
	}
	if coldCalls > coldOffered {
		t.Errorf("cold keys: %d calls for %d requests", coldCalls, coldOffered)
	}
}
