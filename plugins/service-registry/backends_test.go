package main

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestAcquireRacesClose: a Config acquiring a backend while the idle close
// of its last user runs must get a backend that stays open (else that
// config version keeps a closed cache and closed clients until the next
// config change). Hammered: acquire vs closeIfUnused vs releases by GC.
func TestAcquireRacesClose(t *testing.T) {
	r := &backendRegistry{m: map[string]*backend{}, refs: map[string]int{}, idle: 0}
	t.Cleanup(r.closeAll)
	// Nothing listens on port 1: a backend dials lazily, and this test
	// never sends a command.
	rc := RedisConfig{Host: "127.0.0.1", Port: 1, TimeoutMs: 20, KeyPrefix: "race"}
	key := redisKey(rc)
	// Bounded in rounds and time (the failure showed within ~200 rounds
	// on 2 busy cores before the fix).
	stop := time.Now().Add(3 * time.Second)
	rounds := 0
	for ; rounds < 1000 && time.Now().Before(stop); rounds++ {
		i := rounds
		// Release the previous owner (its GC cleanup drops its reference)
		// so that every round races an acquire against a real close.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GC(); r.refCount(key) > 0; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: the previous owner's reference was never released", i)
			}
		}
		owner := &Config{}
		var b *backend
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); b = r.acquire(owner, rc) }()
		go func() { defer wg.Done(); r.closeIfUnused(key) }()
		wg.Wait()
		r.mu.Lock()
		cur := r.m[key]
		r.mu.Unlock()
		if cur != b {
			t.Fatalf("iteration %d: acquire returned a backend that was closed", i)
		}
		runtime.KeepAlive(owner)
	}
	t.Logf("%d rounds", rounds)
}

func (r *backendRegistry) refCount(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refs[key]
}
