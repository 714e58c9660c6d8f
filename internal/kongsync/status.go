package kongsync

import (
	"sync"
	"time"
)

// Status is how the last applies went, for /health and /metrics. It never
// contacts Kong.
type Status struct {
	Mode string // db or dbless; "" until Kong answered once
	// LastError is the last apply's error ("" when it succeeded), and
	// FailingSince when the applies started failing (zero when the last
	// succeeded): Kong unreachable, answering 5xx, or refusing writes
	// (401/403).
	LastError    string
	FailingSince time.Time
	// LastSuccess is when an apply last completed (possibly with refusals).
	LastSuccess time.Time
	// Refused are the entities Kong refused in the last apply that got that
	// far, and RefusedSince when Kong started refusing (zero when none).
	// The other entities were applied.
	Refused      []Refusal
	RefusedSince time.Time
	// FastPath is the catch-all's state after the last apply: on, off
	// (SR_FAST_PATH=off), refused (by Kong: see Refused), or shadowed: an
	// operator's route (named in FastPathShadowedBy) catches "/" without
	// hosts, so ours is not in Kong; not a failure. "" before the first
	// apply.
	FastPath           string
	FastPathShadowedBy string
	// PluginScope is where the last apply put the service-registry
	// plugin: service (on each route's service) or global (one global
	// instance); "" before the first apply. An operator's own global
	// service-registry plugin (named in GlobalPluginShadowedBy) keeps ours
	// out: the sync falls back to scope service then (scope.go); not a
	// failure.
	PluginScope            string
	GlobalPluginShadowedBy string
}

// Healthy reports whether the last apply succeeded with nothing refused.
func (s Status) Healthy() bool { return s.LastError == "" && len(s.Refused) == 0 }

type statusTracker struct {
	mu sync.Mutex
	st Status
}

func (t *statusTracker) record(now time.Time, mode string, refused []Refusal, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if mode != "" {
		t.st.Mode = mode
	}
	if err != nil {
		if t.st.LastError == "" {
			t.st.FailingSince = now
		}
		t.st.LastError = err.Error()
		if len(refused) == 0 {
			// Failed before learning anything new about refusals.
			return
		}
	} else {
		t.st.LastError = ""
		t.st.FailingSince = time.Time{}
		t.st.LastSuccess = now
	}
	if len(refused) == 0 {
		t.st.Refused, t.st.RefusedSince = nil, time.Time{}
		return
	}
	if len(t.st.Refused) == 0 {
		t.st.RefusedSince = now
	}
	t.st.Refused = append([]Refusal(nil), refused...)
}

// setFastPath records the catch-all's state and reports whether it moved.
func (t *statusTracker) setFastPath(state, shadowedBy string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	moved := t.st.FastPath != state || t.st.FastPathShadowedBy != shadowedBy
	t.st.FastPath, t.st.FastPathShadowedBy = state, shadowedBy
	return moved
}

// setPluginScope records the plugin scope and reports whether it moved.
func (t *statusTracker) setPluginScope(scope, shadowedBy string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	moved := t.st.PluginScope != scope || t.st.GlobalPluginShadowedBy != shadowedBy
	t.st.PluginScope, t.st.GlobalPluginShadowedBy = scope, shadowedBy
	return moved
}

func (t *statusTracker) get() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.st
	st.Refused = append([]Refusal(nil), st.Refused...)
	return st
}

// Status returns how the last applies went; safe to call at any time
// (it does not wait for a running apply).
func (s *Syncer) Status() Status { return s.status.get() }
