package breaker

import (
	"errors"
	"io"
	"log/slog"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock           { c := &fakeClock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func local(t *testing.T, s Settings) (*Breakers, *fakeClock) {
	t.Helper()
	c := newFakeClock()
	b, err := New(Options{Settings: s, Now: c.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func call(t *testing.T, b *Breakers, addr string, o Outcome) error {
	t.Helper()
	tk, err := b.Allow(addr)
	if err != nil {
		return err
	}
	tk.Done(o)
	return nil
}

func TestConsecutiveFailuresOpen(t *testing.T) {
	b, clock := local(t, Settings{FailureThreshold: 3, OpenTimeout: time.Second})
	for i := 0; i < 2; i++ {
		if err := call(t, b, "a:1", Failure); err != nil {
			t.Fatal(err)
		}
	}
	call(t, b, "a:1", Success) // breaks the run
	for i := 0; i < 3; i++ {
		if err := call(t, b, "a:1", Failure); err != nil {
			t.Fatalf("failure %d refused: %v", i, err)
		}
	}
	_, err := b.Allow("a:1")
	var oe *OpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) || oe.RetryAfter != time.Second {
		t.Fatalf("after 3 failures: %v", err)
	}
	if b.State("a:1") != Open || !b.Skip("a:1") || b.Skip("b:1") {
		t.Fatal("state/skip wrong")
	}
	// Other instances are independent.
	if err := call(t, b, "b:1", Success); err != nil {
		t.Fatal(err)
	}
	clock.Add(400 * time.Millisecond)
	if d, all := b.AllOpen([]string{"a:1"}); !all || d != 600*time.Millisecond {
		t.Fatalf("AllOpen = %s %v", d, all)
	}
	if _, all := b.AllOpen([]string{"a:1", "b:1"}); all {
		t.Fatal("b:1 is closed")
	}
}

func TestRatioOpensAndLowErrorRateNever(t *testing.T) {
	b, clock := local(t, Settings{FailureThreshold: 100, FailureRatio: 0.5, MinCalls: 10, Window: time.Second})
	for i := 0; i < 9; i++ { // 9 calls, all failing: below MinCalls
		call(t, b, "a", Failure)
		clock.Add(time.Millisecond)
	}
	if b.State("a") != Closed {
		t.Fatal("opened below min calls")
	}
	call(t, b, "a", Failure)
	if b.State("a") != Open {
		t.Fatal("10 of 10 failed but not open")
	}

	// 1 % random errors over 10 000 calls never opens: the default
	// threshold, the ratio rule on.
	b2, clock2 := local(t, Settings{FailureRatio: 0.5})
	rng := rand.New(rand.NewSource(42))
	var fails int
	for i := 0; i < 10000; i++ {
		o := Success
		if rng.Float64() < 0.01 {
			o = Failure
			fails++
		}
		if err := call(t, b2, "x", o); err != nil {
			t.Fatalf("call %d refused after %d failures: %v", i, fails, err)
		}
		clock2.Add(time.Millisecond)
	}
	if fails < 50 {
		t.Fatalf("only %d failures: the test tests nothing", fails)
	}
}

func TestHalfOpenProbesAndGrowingTimeout(t *testing.T) {
	b, clock := local(t, Settings{FailureThreshold: 1, OpenTimeout: time.Second, MaxOpenTimeout: 3 * time.Second, HalfOpenMaxCalls: 2})
	call(t, b, "a", Failure)
	clock.Add(time.Second)
	// Half-open: two probes, then refusals.
	t1, err1 := b.Allow("a")
	t2, err2 := b.Allow("a")
	_, err3 := b.Allow("a")
	if err1 != nil || err2 != nil || !errors.Is(err3, ErrOpen) {
		t.Fatalf("probes: %v %v %v", err1, err2, err3)
	}
	if b.State("a") != HalfOpen {
		t.Fatal(b.State("a"))
	}
	t1.Done(Failure) // probe fails: open again, for 2 s now
	t2.Done(Success) // a late outcome once open again: ignored
	if b.State("a") != Open {
		t.Fatalf("after a failed probe: %s", b.State("a"))
	}
	clock.Add(1500 * time.Millisecond)
	if b.State("a") != Open {
		t.Fatal("second trip should last 2 s")
	}
	clock.Add(500 * time.Millisecond)
	tk, err := b.Allow("a")
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(Failure) // third trip: 4 s capped at 3 s
	clock.Add(2999 * time.Millisecond)
	if b.State("a") != Open {
		t.Fatal("third trip too short")
	}
	clock.Add(time.Millisecond)
	tk, err = b.Allow("a")
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(Success)
	if b.State("a") != Closed {
		t.Fatalf("a successful probe should close: %s", b.State("a"))
	}
}

func TestRecordWithoutTicket(t *testing.T) {
	b, clock := local(t, Settings{FailureThreshold: 2, OpenTimeout: time.Second})
	b.Record("a", Failure)
	b.Record("a", Ignored)
	b.Record("a", Failure)
	if b.State("a") != Open {
		t.Fatal("Record did not count")
	}
	clock.Add(time.Second)
	if _, err := b.Allow("a"); err != nil { // the probe
		t.Fatal(err)
	}
	b.Record("a", Success) // the log phase of that probe
	if b.State("a") != Closed {
		t.Fatal(b.State("a"))
	}
}

func TestClassify(t *testing.T) {
	s := Settings{}
	for _, c := range []struct {
		status int
		failed bool
		want   Outcome
	}{{200, false, Success}, {404, false, Success}, {500, false, Failure}, {503, false, Failure}, {0, false, Failure}, {200, true, Failure}} {
		if got := s.Classify(c.status, c.failed); got != c.want {
			t.Errorf("Classify(%d,%v) = %d", c.status, c.failed, got)
		}
	}
	s.FailureStatuses = []int{429}
	if s.Classify(500, false) != Success || s.Classify(429, false) != Failure {
		t.Error("custom statuses ignored")
	}
}

func TestInvalidSettings(t *testing.T) {
	if _, err := New(Options{Settings: Settings{FailureRatio: 2}}); !errors.Is(err, ErrInvalidSettings) {
		t.Fatal(err)
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	b, _ := local(t, Settings{})
	call(t, b, "a", Success)
	n := testing.AllocsPerRun(1000, func() {
		tk, _ := b.Allow("a")
		tk.Done(Success)
	})
	if n != 0 {
		t.Fatalf("%v allocations per Allow+Done", n)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, 200 * time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 30 * time.Second: 30} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
