package ratelimit

import (
	"sync"
	"time"
)

// denyCache remembers denied keys until their retry-after. A denial stays
// exact until then: no node can lower a theoretical arrival time, only push
// it further, so Redis would deny the same key too.
type denyCache struct {
	shards [16]denyShard
	max    int
}

type denyShard struct {
	mu sync.RWMutex
	m  map[string]denyEntry
}

type denyEntry struct {
	until time.Time
	at    time.Time
	r     Result
}

func newDenyCache(size int) *denyCache {
	d := &denyCache{max: max(1, size/16)}
	for i := range d.shards {
		d.shards[i].m = make(map[string]denyEntry)
	}
	return d
}

func (d *denyCache) shard(key string) *denyShard {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &d.shards[h%16]
}

// get returns the cached denial of key if it was decided on the same
// limits: a config change (new rate or burst) must reach Redis at once,
// not after the old denial's retry-after.
func (d *denyCache) get(key string, limits []Limit, now time.Time) (Result, bool) {
	s := d.shard(key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok || !now.Before(e.until) || !sameLimits(&e.r, limits) {
		return Result{}, false
	}
	r := e.r
	r.Source = SourceCache
	elapsed := now.Sub(e.at)
	for i := range r.periods[:r.n] {
		p := &r.periods[i]
		if p.RetryAfter > 0 {
			p.RetryAfter = max(time.Microsecond, p.RetryAfter-elapsed)
		}
		p.ResetAfter = max(0, p.ResetAfter-elapsed)
	}
	return r, true
}

func sameLimits(r *Result, limits []Limit) bool {
	if r.n != len(limits) {
		return false
	}
	for i, l := range limits {
		if r.periods[i].Limit != l {
			return false
		}
	}
	return true
}

func (d *denyCache) put(key string, r Result, now time.Time) {
	ra := r.RetryAfter()
	if ra <= 0 {
		return
	}
	s := d.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= d.max {
		for k, e := range s.m {
			if !now.Before(e.until) {
				delete(s.m, k)
			}
		}
		// Still full of live denials: forget one; the cost is one Redis call.
		for k := range s.m {
			if len(s.m) < d.max {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[key] = denyEntry{until: now.Add(ra), at: now, r: r}
}
