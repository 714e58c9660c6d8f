package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/kong-service-registry/service-registry/internal/breaker"
)

// breakerSet is one running breaker.Breakers and the number of Configs
// using it. Breaker states must outlive config versions (Kong makes a new
// Config per version), so sets live on the backend, shared by every
// Config with the same scope and settings, and are reference-counted.
type breakerSet struct {
	b      *breaker.Breakers
	scope  string // for metrics
	cancel context.CancelFunc
	refs   int
}

// acquireBreakers returns the breaker set of this config's scope and
// settings, shared by every Config (and config version) with the same ones,
// and stopped a while after the last of them is garbage collected.
func (c *Config) acquireBreakers(b *backend) (*breaker.Breakers, error) {
	cb := c.CircuitBreaker
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	st := breaker.Settings{
		FailureThreshold: cb.FailureThreshold, FailureRatio: cb.FailureRatio, MinCalls: cb.MinCalls,
		Window: ms(cb.WindowMs), OpenTimeout: ms(cb.TimeoutMs), HalfOpenMaxCalls: cb.HalfOpenMaxCalls,
		FailureStatuses: breakerStatuses(cb.FailureStatuses),
	}
	// The scope must be the same on every Kong node: the registry service,
	// else the Kong service id, else the plugin id.
	scope := firstNonEmpty(c.Service, c.serviceID, c.pluginID)
	key := strconv.Quote(scope) + fmt.Sprintf("%+v", st)

	b.guardMu.Lock()
	defer b.guardMu.Unlock()
	set := b.breakers[key]
	if set == nil {
		br, err := breaker.New(breaker.Options{
			Settings: st, Redis: b.rdb, Prefix: b.prefix, Scope: scope, Logger: logger(),
			// A sync carries every known instance; give it more than one
			// request's timeout_ms, but never more than an interval.
			SyncTimeout: min(max(4*b.timeout, 50*time.Millisecond), 200*time.Millisecond),
		})
		if err != nil {
			return nil, fmt.Errorf("circuit_breaker: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go br.Run(ctx)
		set = &breakerSet{b: br, scope: scope, cancel: cancel}
		if b.breakers == nil {
			b.breakers = map[string]*breakerSet{}
		}
		b.breakers[key] = set
	}
	set.refs++
	runtime.AddCleanup(c, b.releaseBreakers, key)
	return set.b, nil
}

// breakerStatuses is failure_statuses as the breaker takes it: exactly
// every status 500-599 (the default) becomes nil, the breaker's own form of
// that set, which it checks with two comparisons instead of scanning 100
// entries for every try in the log phase.
func breakerStatuses(list []int) []int {
	if len(list) != 100 {
		return list
	}
	seen := [100]bool{}
	for _, s := range list {
		if s < 500 || s > 599 || seen[s-500] {
			return list
		}
		seen[s-500] = true
	}
	return nil
}

// releaseBreakers drops one user of a breaker set; the last one stops it
// after the backends' idle delay (a config change keeping the settings
// keeps the breaker states).
func (b *backend) releaseBreakers(key string) {
	b.guardMu.Lock()
	set := b.breakers[key]
	if set == nil {
		b.guardMu.Unlock()
		return
	}
	set.refs--
	last := set.refs <= 0
	b.guardMu.Unlock()
	if !last {
		return
	}
	backends.mu.Lock()
	idle := backends.idle
	backends.mu.Unlock()
	time.AfterFunc(idle, func() {
		b.guardMu.Lock()
		defer b.guardMu.Unlock()
		if cur := b.breakers[key]; cur == set && set.refs <= 0 {
			set.cancel()
			delete(b.breakers, key)
		}
	})
}

// stopBreakers stops every breaker sync of the backend.
func (b *backend) stopBreakers() {
	b.guardMu.Lock()
	defer b.guardMu.Unlock()
	for k, set := range b.breakers {
		set.cancel()
		delete(b.breakers, k)
	}
}
