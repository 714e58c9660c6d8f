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

// maxLeaseUnits caps one lease (Options.MaxLease caps it further).
const maxLeaseUnits = 1 << 16

// lease is one grant: units granted (0 = none), the next unit to spend,
// Redis' time of the grant (µs), the local time the call was sent (ns), and
// each limit's slot of unit 0 (µs, Redis clock).
type lease struct {
	units, next int
	redisNow    int64
	sent        int64
	first       [MaxLimits]int64
}

// leaseEntry is one key's leases and rate on this node: the lease being
// spent, and the next one, fetched in the background when the current one
// is half spent, so a busy key never waits for Redis.
type leaseEntry struct {
	mu       sync.Mutex
	cur, nxt lease
	n        int
	limits   [MaxLimits]Limit // what the leases were granted under
	fetching bool
	// the rate: requests counted since `since` (local ns), the last rolled
	// sample's rate per second, and the last use (eviction)
	since, lastUse int64
	count          int
	rate           float64
}

// spend admits one request from the leases, if a unit is still valid at
// local time now (ns). It returns the decision as the headers need it, and
// how many units to prefetch (> 1: the caller must fetch them in the
// background and call done).
func (e *leaseEntry) spend(limits []Limit, now int64) (Result, bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastUse = now
	if e.cur.units == 0 || !e.same(limits) {
		return Result{}, false, 0
	}
	j, rnow := e.cur.valid(limits, now)
	if j >= e.cur.units && e.nxt.units > 0 {
		e.cur, e.nxt = e.nxt, lease{}
		j, rnow = e.cur.valid(limits, now)
	}
	if j >= e.cur.units {
		e.cur.units = 0 // spent out or expired: the next request goes to Redis
		return Result{}, false, 0
	}
	e.cur.next = j + 1
	e.tally(now)
	r := unitResult(&e.cur.first, limits, j, rnow)
	r.Source = SourceLease
	pre := 0
	if left := e.cur.units - e.cur.next; e.nxt.units == 0 && !e.fetching && left*2 <= e.cur.units {
		if pre = e.size(limits); pre > 1 {
			e.fetching = true
		}
	}
	return r, true, pre
}

// unitResult is the decision for unit j of the current lease as the
// headers show it: this node's view, the key's TAT taken as the slot after
// unit j (so a node spending its lease counts down one by one). Units other
// nodes were granted after this lease are not in it: with several busy
// nodes Remaining may read higher than Redis would say, never the limit.
func unitResult(first *[MaxLimits]int64, limits []Limit, j int, rnow int64) Result {
	r := Result{Allowed: true, Source: SourceRedis, n: len(limits)}
	for i, l := range limits {
		iv := l.interval()
		tat := first[i] + int64(j+1)*iv
		r.periods[i] = PeriodResult{
			Limit:      l,
			Remaining:  int(max(0, (l.capacity()-(tat-rnow))/iv)),
			ResetAfter: time.Duration(max(0, tat-rnow)) * time.Microsecond,
		}
	}
	return r
}

// valid is the first unit at or after next that may still be spent at
// local time now, and Redis' clock now at the latest.
func (ls *lease) valid(limits []Limit, now int64) (int, int64) {
	// Redis' clock now is at most redisNow + (now - sent): the call reached
	// Redis after it was sent. Unit j must be spent by first + j·e + slack.
	rnow := ls.redisNow + (now-ls.sent)/1000
	j := ls.next
	for i, l := range limits {
		iv := l.interval()
		late := rnow - l.slack() - ls.first[i] // unit j is valid while j·e >= late
		if late > 0 {
			j = max(j, int((late+iv-1)/iv))
		}
	}
	return j, rnow
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

// want counts this request and returns how many units to ask Redis for
// (see size). Asking for more than 1 marks the entry fetching (one lease
// call per key at a time; others meanwhile ask for 1); done must then be
// called.
func (e *leaseEntry) want(limits []Limit, now int64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastUse = now
	e.tally(now)
	n := e.size(limits)
	if n <= 1 || e.fetching {
		return 1
	}
	e.fetching = true
	return n
}

// tally counts one request in the rate sample.
func (e *leaseEntry) tally(now int64) {
	if el := now - e.since; el > int64(sampleEvery) {
		e.rate = float64(e.count) / (float64(el) / 1e9)
		e.since, e.count = now, 0
	}
	e.count++
}

// size is the key's rate on this node times the smallest slack (what the
// node can spend before the units expire), 1 for a cold key, and at most
// Rate/SlackDivisor of every limit.
func (e *leaseEntry) size(limits []Limit) int {
	rate := e.rate
	if el := e.lastUse - e.since; el > int64(minSample) {
		rate = max(rate, float64(e.count)/(float64(el)/1e9))
	}
	slack := limits[0].slack()
	most := maxLeaseUnits
	for _, l := range limits {
		slack = min(slack, l.slack())
		// never more than the limit itself admits in one slack (Rate/50):
		// a lease must not hold a key's capacity away from the other nodes
		most = min(most, max(1, l.Rate/SlackDivisor))
	}
	return min(int(rate*float64(slack)/1e6+0.999), most)
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
	if !e.same(limits) {
		e.nxt = lease{}
	}
	e.n = len(limits)
	copy(e.limits[:], limits)
	e.cur = lease{units: g.units, next: 1, redisNow: g.redisNow, sent: sent, first: g.first}
}

// storeNext keeps a prefetched grant (all its units unspent) behind the
// lease being spent, or in its place when that one is done.
func (e *leaseEntry) storeNext(limits []Limit, g *grant, sent int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.same(limits) {
		return // the config changed while it was in flight
	}
	ls := lease{units: g.units, redisNow: g.redisNow, sent: sent, first: g.first}
	if e.cur.units == 0 || e.cur.next >= e.cur.units {
		e.cur = ls
		return
	}
	e.nxt = ls
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
