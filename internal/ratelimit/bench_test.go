package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// decide is one rate-limit decision by some limiter under test.
type decide func(ctx context.Context, key string) (bool, error)

// runDecisions measures one limiter side by side with the others on the
// same Redis: decisions/s, Redis commands per decision (INFO
// commandstats, counting the commands scripts run too), round trips per
// decision, p50/p99 latency per decision, share admitted.
func runDecisions(b *testing.B, s *redistest.Server, key string, serial bool, d decide) {
	ctx := context.Background()
	if _, err := d(ctx, "warm"); err != nil { // loads scripts
		b.Fatal(err)
	}
	s.ResetStats()
	var mu sync.Mutex
	var lats []time.Duration
	var admitted, errs atomic.Int64
	b.SetParallelism(4) // 8 concurrent requests on 2 cores, like a busy Kong worker set
	b.ResetTimer()
	start := time.Now()
	loop := func(next func() bool) {
		local := make([]time.Duration, 0, 4096)
		for next() {
			t0 := time.Now()
			ok, err := d(ctx, key)
			local = append(local, time.Since(t0))
			if err != nil {
				errs.Add(1)
			} else if ok {
				admitted.Add(1)
			}
		}
		mu.Lock()
		lats = append(lats, local...)
		mu.Unlock()
	}
	if serial { // one caller at a time: the latency a decision adds, without queueing
		i := 0
		loop(func() bool { i++; return i <= b.N })
	} else {
		b.RunParallel(func(pb *testing.PB) { loop(pb.Next) })
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if errs.Load() > 0 {
		b.Fatalf("%d errors", errs.Load())
	}
	cmds := s.TotalCalls("config|resetstat")
	calls := s.CommandCalls()
	// One script call or one MULTI..EXEC pipeline is one round trip.
	trips := calls["evalsha"] + calls["eval"] + calls["exec"]
	slices.Sort(lats)
	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "decisions/s")
	b.ReportMetric(float64(cmds)/n, "redis-cmds/decision") // script-internal commands included
	b.ReportMetric(float64(trips)/n, "round-trips/decision")
	b.ReportMetric(lats[len(lats)/2].Seconds()*1e6, "p50-µs")
	b.ReportMetric(lats[len(lats)*99/100].Seconds()*1e6, "p99-µs")
	b.ReportMetric(100*float64(admitted.Load())/n, "%admitted")
}

// BenchmarkLimiters: our GCRA vs go-redis/redis_rate vs a fixed window
// (INCR+EXPIRE in a MULTI), same Redis, same load.
//
//	under:   every request admitted (limit far above the load), 8 callers
//	under-serial: the same with one caller: p50/p99 are the added latency
//	over:    10/s on one key, nearly every request denied
//	two:     per-second + per-minute limits, admitted; redis_rate needs one
//	         call per limit and is not all-or-nothing, the others do one trip
func BenchmarkLimiters(b *testing.B) {
	s := redistest.Start(b, redistest.Options{})
	rdb := newClient(b, s.Addr) // ContextTimeoutEnabled, as the plugin builds it
	ours := New(rdb, Options{Timeout: time.Second, Logger: quiet()})
	rr := redis_rate.NewLimiter(rdb)
	fw := &fixedWindow{c: rdb}

	type scenario struct {
		name   string
		serial bool
		limits []Limit
	}
	for _, sc := range []scenario{
		{"under", false, []Limit{{Rate: 100000, Period: time.Second, Burst: 100000}}},
		{"under-serial", true, []Limit{{Rate: 100000, Period: time.Second, Burst: 100000}}},
		{"over", false, []Limit{PerSecond(10, 0)}},
		{"two", false, []Limit{{Rate: 100000, Period: time.Second, Burst: 100000}, {Rate: 6000000, Period: time.Minute, Burst: 100000}}},
	} {
		key := "bench-" + sc.name
		b.Run(sc.name+"/gcra", func(b *testing.B) {
			runDecisions(b, s, key, sc.serial, func(ctx context.Context, key string) (bool, error) {
				r, err := ours.Allow(ctx, key, sc.limits)
				return r.Allowed, err
			})
		})
		b.Run(sc.name+"/redis_rate", func(b *testing.B) {
			runDecisions(b, s, key, sc.serial, func(ctx context.Context, key string) (bool, error) {
				ok := true
				for i, l := range sc.limits {
					r, err := rr.Allow(ctx, fmt.Sprint(key, i), redis_rate.Limit{Rate: l.Rate, Period: l.Period, Burst: l.Burst + 1})
					if err != nil {
						return false, err
					}
					ok = ok && r.Allowed > 0
				}
				return ok, nil
			})
		})
		b.Run(sc.name+"/fixed_window", func(b *testing.B) {
			runDecisions(b, s, key, sc.serial, func(ctx context.Context, key string) (bool, error) {
				ok := true
				for i, l := range sc.limits {
					fw.limit = int64(l.Rate)
					admit, err := fw.allowPeriod(ctx, fmt.Sprint(key, i), l.Period, time.Now())
					if err != nil {
						return false, err
					}
					ok = ok && admit
				}
				return ok, nil
			})
		})
	}
}

// BenchmarkLimitersInterleaved: the three limiters take turns inside one
// loop (rotating order), one caller, every request admitted, so machine
// noise hits them alike; per-limiter mean/p50/p99 latency in µs. One op is
// one decision by each of the three.
func BenchmarkLimitersInterleaved(b *testing.B) {
	s := redistest.Start(b, redistest.Options{})
	rdb := newClient(b, s.Addr)
	ours := New(rdb, Options{Timeout: time.Second, Logger: quiet()})
	rr := redis_rate.NewLimiter(rdb)
	fw := &fixedWindow{c: rdb, limit: 1 << 40}
	ctx := context.Background()
	ourLimit := []Limit{{Rate: 100000, Period: time.Second, Burst: 100000}}
	rrLimit := redis_rate.Limit{Rate: 100000, Period: time.Second, Burst: 100001}
	names := []string{"gcra", "redis_rate", "fixed_window"}
	calls := []func() error{
		func() error { _, err := ours.Allow(ctx, "il", ourLimit); return err },
		func() error { _, err := rr.Allow(ctx, "il", rrLimit); return err },
		func() error { _, err := fw.allowPeriod(ctx, "il", time.Second, time.Now()); return err },
	}
	for _, c := range calls { // load scripts
		if err := c(); err != nil {
			b.Fatal(err)
		}
	}
	lats := make([][]time.Duration, len(calls))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range calls {
			k := (i + j) % len(calls)
			t0 := time.Now()
			if err := calls[k](); err != nil {
				b.Fatal(err)
			}
			lats[k] = append(lats[k], time.Since(t0))
		}
	}
	b.StopTimer()
	for k, l := range lats {
		var sum time.Duration
		for _, d := range l {
			sum += d
		}
		slices.Sort(l)
		b.ReportMetric(sum.Seconds()*1e6/float64(len(l)), names[k]+"-mean-µs")
		b.ReportMetric(l[len(l)/2].Seconds()*1e6, names[k]+"-p50-µs")
		b.ReportMetric(l[len(l)*99/100].Seconds()*1e6, names[k]+"-p99-µs")
	}
}
