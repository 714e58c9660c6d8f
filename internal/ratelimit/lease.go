package ratelimit

import (
	"sync"
	"time"
)

// Leases take Redis off the path of admitted requests at busy keys. When a
// key's recent rate on this node says it will see more than one request
// within its slack, the request that goes to Redis asks for that many units
// (leaseScript): Redis moves the key's TAT past all of them at once and
// tells the node the slot of the first. The node then admits the next
// requests from those units, each no later than its own slot + slack
// (Redis clock, bounded from the node's clock by the time the call was
// sent), skipping units that expired unspent. A spent-out or expired lease
// sends the next request to Redis again. Cold keys never lease: one call
// per request, as before.
//
// The bound this keeps is in doc.go ("The bound").

// sampleEvery is how long a key's rate sample runs before it is rolled;
// minSample is how much of it must have passed before the running sample
// counts (so one quick pair of requests does not make a key busy).
const (
	sampleEvery = 100 * time.Millisecond
	minSample   = 10 * time.Millisecond
)

// leaseEntry is one key's lease and rate on this node.
type leaseEntry struct {
	mu sync.Mutex
	// the lease: units granted (0 = none), next unit to spend, the limits it
	// was granted under, Redis' time of the grant (µs), the local time the
	// call was sent (ns), and each limit's slot of unit 0 (µs, Redis clock)
	units, next int
	n           int
	limits      [MaxLimits]Limit
	redisNow    int64
	sent        int64
	first       [MaxLimits]int64
	fetching    bool
	// the rate: requests counted since `since` (local ns), the last rolled
	// sample's rate per second, and the last use (eviction)
	since, lastUse int64
	count          int
	rate           float64
}

// spend admits one request from the lease, if a unit is still valid at
// local time now (ns). It returns the decision as the headers need it.
func (e *leaseEntry) spend(limits []Limit, now int64) (Result, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastUse = now
	if e.units == 0 || !e.same(limits) {
		return Result{}, false
	}
	// Redis' clock now is at most redisNow + (now - sent): the call reached
	// Redis after it was sent. Unit j must be spent by first + j·e + slack.
	rnow := e.redisNow + (now-e.sent)/1000
	j := e.next
	for i, l := range limits {
		iv := l.interval()
		late := rnow - l.slack() - e.first[i] // unit j is valid while j·e >= late
		if late > 0 {
			j = max(j, int((late+iv-1)/iv))
		}
	}
	if j >= e.units {
		e.units = 0 // spent out or expired: the next request goes to Redis
		return Result{}, false
	}
	e.next = j + 1
	e.count++
	r := Result{Allowed: true, Source: SourceLease, n: len(limits)}
	for i, l := range limits {
		iv := l.interval()
		tat := e.first[i] + int64(j+1)*iv // the TAT were these units the only ones
		r.periods[i] = PeriodResult{
			Limit:      l,
			Remaining:  int(max(0, (l.capacity()-(tat-rnow))/iv)),
			ResetAfter: time.Duration(max(0, tat-rnow)) * time.Microsecond,
		}
	}
	return r, true
}

func (e *leaseEntry) same(limits []Limit) bool {
	if e.n != len(limits) {
		return false
	}
	for i, l := range limits {
		if e.limits[i] != l {
			return false
		}
	}
	return true
}

// want counts this request and returns how many units to ask Redis for:
// the key's rate on this node times the smallest slack (what the node can
// spend before the units expire), 1 for a cold key, at most max. Asking for
// more than 1 marks the entry fetching (one lease call per key at a time;
// others meanwhile ask for 1); done must then be called.
func (e *leaseEntry) want(limits []Limit, now int64, most int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastUse = now
	el := now - e.since
	if el > int64(sampleEvery) {
		e.rate = float64(e.count) / (float64(el) / 1e9)
		e.since, e.count = now, 0
		el = 0
	}
	e.count++
	rate := e.rate
	if el > int64(minSample) {
		rate = max(rate, float64(e.count)/(float64(el)/1e9))
	}
	slack := limits[0].slack()
	for _, l := range limits[1:] {
		slack = min(slack, l.slack())
	}
	n := int(rate*float64(slack)/1e6 + 0.999)
	if n <= 1 || most <= 1 || e.fetching {
		return 1
	}
	e.fetching = true
	return min(n, most)
}

func (e *leaseEntry) done() {
	e.mu.Lock()
	e.fetching = false
	e.mu.Unlock()
}

// store keeps a grant of more than one unit; unit 0 went to the request
// that asked.
func (e *leaseEntry) store(limits []Limit, g *grant, sent int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.units, e.next, e.n = g.units, 1, len(limits)
	copy(e.limits[:], limits)
	e.redisNow, e.sent = g.redisNow, sent
	e.first = g.first
}

// leaseTable holds the entries, sharded, bounded in size.
type leaseTable struct {
	shards [16]leaseShard
	max    int
}

type leaseShard struct {
	mu sync.RWMutex
	m  map[string]*leaseEntry
}

func newLeaseTable(size int) *leaseTable {
	t := &leaseTable{max: max(1, size/16)}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*leaseEntry)
	}
	return t
}

// entry returns key's entry, created when missing.
func (t *leaseTable) entry(key string, now int64) *leaseEntry {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	s := &t.shards[h%16]
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e = s.m[key]; e != nil {
		return e
	}
	if len(s.m) >= t.max {
		s.evict(now, t.max)
	}
	e = &leaseEntry{}
	s.m[key] = e
	return e
}

// evict drops entries idle for a second (their per-second leases have
// expired; a dropped per-minute lease only costs the node its unspent
// units); if none is idle, any one, so the shard stays bounded.
func (s *leaseShard) evict(now int64, most int) {
	for k, e := range s.m {
		e.mu.Lock()
		idle := now-e.lastUse > int64(time.Second) && !e.fetching
		e.mu.Unlock()
		if idle {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) < most {
			break
		}
		delete(s.m, k)
	}
}
