package testbin

import (
	"testing"
	"time"
)

// Polls start 1 ms apart and back off to maxPollGap: a condition that holds
// soon is seen at once, and a slow one (an HTTP call, a process start) is
// not hammered on a loaded machine.
const maxPollGap = 10 * time.Millisecond

// Poll calls cond until it holds (true) or d has passed (false).
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	gap := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(gap)
		gap = min(2*gap, maxPollGap)
	}
	return true
}

// WaitFor polls cond until it holds and returns how long that took; past d
// it fails the test naming what it waited for. d is a deadline against a
// hang, not a speed claim: give it ample room (10× what is expected).
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitForWhy(t, d, what, func() (bool, string) { return cond(), "" })
}

// WaitForWhy is WaitFor for a condition that can say why it does not hold
// yet; the last reason is in the failure.
func WaitForWhy(t testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var why string
	ok := Poll(d, func() bool {
		var done bool
		done, why = cond()
		return done
	})
	if !ok {
		if why != "" {
			t.Fatalf("%s: not within %s (last: %s)", what, d, why)
		}
		t.Fatalf("%s: not within %s", what, d)
	}
	return time.Since(start)
}
