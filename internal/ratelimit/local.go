package ratelimit

import (
	"sync"
	"time"
)

// localLimiter is the FailLocal fallback: the same GCRA, in process, on the
// local clock, with each limit cut to this node's share (see FailLocal).
type localLimiter struct {
	nodes int
	max   int
	mu    sync.Mutex
	tats  map[string]*[MaxLimits]int64 // unix µs per limit, in limit order
}

func newLocalLimiter(nodes, size int) *localLimiter {
	return &localLimiter{nodes: nodes, max: size, tats: make(map[string]*[MaxLimits]int64)}
}

// share is this node's part of a limit.
func (ll *localLimiter) share(l Limit) Limit {
	rate := (l.Rate + ll.nodes - 1) / ll.nodes
	return Limit{Rate: max(1, rate), Period: l.Period, Burst: l.Burst / ll.nodes}
}

func (ll *localLimiter) allow(key string, limits []Limit, t time.Time) Result {
	now := t.UnixMicro()
	ll.mu.Lock()
	defer ll.mu.Unlock()
	tats, ok := ll.tats[key]
	if !ok {
		if len(ll.tats) >= ll.max {
			ll.sweep(now)
		}
		tats = new([MaxLimits]int64)
		ll.tats[key] = tats
	}
	r := Result{Allowed: true, Source: SourceLocal, n: len(limits)}
	var cur [MaxLimits]int64
	for i, l := range limits {
		s := ll.share(l)
		cur[i] = max(tats[i], now)
		if cur[i]+s.interval()-now > s.capacity() {
			r.Allowed = false
		}
	}
	for i, l := range limits {
		s := ll.share(l)
		e, c := s.interval(), s.capacity()
		p := PeriodResult{Limit: l}
		if r.Allowed {
			tats[i] = cur[i] + e
			p.Remaining = int((c - (tats[i] - now)) / e)
			p.ResetAfter = time.Duration(tats[i]-now) * time.Microsecond
		} else {
			p.Remaining = int(max(0, (c-(cur[i]-now))/e))
			p.RetryAfter = time.Duration(max(0, cur[i]+e-now-c)) * time.Microsecond
			p.ResetAfter = time.Duration(cur[i]-now) * time.Microsecond
		}
		r.periods[i] = p
	}
	return r
}

// sweep drops keys whose every limit is back to full; if none are, it drops
// all, which only forgets history for the fallback's short life.
func (ll *localLimiter) sweep(now int64) {
	for k, t := range ll.tats {
		idle := true
		for _, v := range t {
			if v > now {
				idle = false
			}
		}
		if idle {
			delete(ll.tats, k)
		}
	}
	if len(ll.tats) >= ll.max {
		clear(ll.tats)
	}
}
