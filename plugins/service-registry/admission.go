package main

import (
	"strconv"
	"time"

	"github.com/kong-service-registry/service-registry/internal/breaker"
	"github.com/kong-service-registry/service-registry/internal/discovery"
)

// breakerGuard is the circuit breaker of one config: in the access phase
// (registry = redis) the picker skips open instances and asks the breaker
// to admit the one picked; in the log phase it records outcomes
// (outcome.go).
type breakerGuard struct {
	set  *breaker.Breakers // shared per (scope, settings): breakers.go
	code int               // circuit_breaker.error_code
}

// admit asks the breaker for the picked target and, when it refuses (a
// half-open instance whose probe this node already sent), picks again.
func (g *breakerGuard) admit(snap *discovery.Snapshot, now time.Time, skip func(string) bool, t *discovery.Target) bool {
	for range len(snap.Targets) + 1 {
		if _, err := g.set.Allow(t.Addr); err == nil {
			return true
		}
		next, ok := snap.Pick(now, skip)
		if !ok {
			return false
		}
		*t = next
	}
	return false
}

// allOpen builds the answer when every instance of the snapshot is kept
// out by its breaker: error_code (503) with Retry-After.
func (g *breakerGuard) allOpen(snap *discovery.Snapshot, name string) (int, []byte, map[string][]string, bool) {
	addrs := make([]string, len(snap.Targets))
	for i := range snap.Targets {
		addrs[i] = snap.Targets[i].Addr
	}
	wait, all := g.set.AllOpen(addrs)
	if !all {
		return 0, nil, nil, false
	}
	h := map[string][]string{
		"Content-Type": {"application/json"},
		"Retry-After":  {strconv.Itoa(breaker.RetryAfterSeconds(wait))},
	}
	return g.code, messageJSON("circuit breaker open for every instance of service " + name), h, true
}

// skip tells the picker which instances the breaker keeps out.
func (g *breakerGuard) skip(addr string) bool { return g.set.Skip(addr) }
