package breaker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// lossy loses the replies of its pipelines while lose is set: Redis runs
// the commands, the caller sees a timeout, as with a sync whose reply came
// back after its deadline on a loaded machine.
type lossy struct {
	Client
	lose atomic.Bool
}

func (c *lossy) Pipeline() redis.Pipeliner {
	return &lossyPipe{Pipeliner: c.Client.Pipeline(), c: c}
}

type lossyPipe struct {
	redis.Pipeliner
	c *lossy
}

func (p *lossyPipe) Exec(ctx context.Context) ([]redis.Cmder, error) {
	cmds, err := p.Pipeliner.Exec(ctx)
	if !p.c.lose.Load() {
		return cmds, err
	}
	for _, c := range cmds {
		c.SetErr(context.DeadlineExceeded)
	}
	return cmds, context.DeadlineExceeded
}

// A probe token the cluster granted in a sync whose reply was lost goes back
// to the budget when the node asks again, instead of holding it until
// ProbeTimeout: the node half-opens, its next sync brings the token, and the
// budget stays one probe cluster-wide. Local time is frozen (injected
// clock); only the open period runs, on Redis' clock.
func TestLostProbeGrantIsGivenBack(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	// The open period must outlast the two syncs below on a loaded machine
	// (20 ms did not: node 2 saw it half-open already): 1 s, then the test
	// waits for it to run out.
	st := Settings{FailureThreshold: 1, OpenTimeout: time.Second, ProbeTimeout: time.Hour}
	clock := newFakeClock()
	c := &lossy{Client: s.Client()}
	// Syncs are called by hand; a generous timeout keeps a loaded machine
	// from losing replies other than the one this test loses on purpose.
	n1, err := New(Options{Settings: st, Redis: c, Now: clock.Now, Logger: quiet(), SyncTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n2, err := New(Options{Settings: st, Redis: s.Client(), Now: clock.Now, Logger: quiet(), SyncTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const addr = "10.0.0.9:8080"
	n2.Record(addr, Success) // node 2 knows the instance
	if err := call(t, n1, addr, Failure); err != nil {
		t.Fatal(err)
	}
	n1.SyncOnce(ctx) // the cluster opens it
	n2.SyncOnce(ctx)
	if n1.State(addr) != Open || n2.State(addr) != Open {
		t.Fatalf("not open everywhere: %s, %s", n1.State(addr), n2.State(addr))
	}
	// Sync, with no request asking for a probe, until the cluster's open
	// period has run out: node 1 is half-open without a token.
	in := n1.get(addr)
	waitFor(t, 20*time.Second, "half-open from the cluster", func() bool {
		n1.SyncOnce(ctx)
		return State(in.state.Load()) == HalfOpen
	})
	if !n1.Skip(addr) { // a request wants the instance: ask for a token
		t.Fatal("half-open without a token is not skipped")
	}
	c.lose.Store(true)
	n1.SyncOnce(ctx) // Redis grants the token; the reply is lost
	c.lose.Store(false)
	if _, err := n1.Allow(addr); !errors.Is(err, ErrOpen) {
		t.Fatalf("admitted without a token: %v", err)
	}

	n1.SyncOnce(ctx) // asks again: the lost claim is given back, a token comes
	probe, err := n1.Allow(addr)
	if err != nil {
		t.Fatalf("no probe after a lost grant (the budget waits for ProbeTimeout): %v", err)
	}
	// Still one probe cluster-wide: node 2 asks and gets nothing.
	n2.SyncOnce(ctx)
	if !n2.Skip(addr) {
		t.Fatal("node 2: half-open instance not skipped")
	}
	n2.SyncOnce(ctx)
	if _, err := n2.Allow(addr); !errors.Is(err, ErrOpen) {
		t.Fatalf("node 2 got a second probe of a budget of 1: %v", err)
	}

	probe.Done(Success)
	n1.SyncOnce(ctx)
	n2.SyncOnce(ctx)
	if n1.State(addr) != Closed || n2.State(addr) != Closed {
		t.Fatalf("probe success did not close everywhere: %s, %s", n1.State(addr), n2.State(addr))
	}
}

// halfOpenPair opens addr on two nodes sharing one Redis (node 2's replies
// can be lost) and waits, syncing both, until the cluster's open period
// has run out: both half-open, no token granted yet. Local time is frozen
// (injected clock); only the open period runs, on Redis' clock.
func halfOpenPair(t *testing.T, addr string) (n1, n2 *Breakers, lose *lossy, clock *fakeClock) {
	t.Helper()
	s := redistest.Start(t, redistest.Options{})
	st := Settings{FailureThreshold: 1, OpenTimeout: time.Second, ProbeTimeout: time.Hour}
	clock = newFakeClock()
	lose = &lossy{Client: s.Client()}
	var err error
	// Syncs are called by hand; a generous timeout keeps a loaded machine
	// from losing replies other than the ones a test loses on purpose.
	if n1, err = New(Options{Settings: st, Redis: s.Client(), Now: clock.Now, Logger: quiet(), SyncTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if n2, err = New(Options{Settings: st, Redis: lose, Now: clock.Now, Logger: quiet(), SyncTimeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	n2.Record(addr, Success) // node 2 knows the instance
	if err := call(t, n1, addr, Failure); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, 20*time.Second, "half-open on both nodes", func() bool {
		n1.SyncOnce(ctx)
		n2.SyncOnce(ctx)
		return State(n1.get(addr).state.Load()) == HalfOpen && State(n2.get(addr).state.Load()) == HalfOpen
	})
	return n1, n2, lose, clock
}

// The probe token of a node whose traffic for the instance stopped (it
// asked for one, the grant came, no request used it, or the reply granting
// it was lost) goes back to the budget while that node keeps syncing, so
// the node that has traffic probes and closes the instance instead of
// waiting ProbeTimeout. Seen in real Kong (tests/realkong
// TestGuardsBreakerTwoNodes under load): node 2 asked at the end of its
// traffic, both backends recovered, node 1 kept both out for the test's
// 15 s.
func TestIdleNodesProbeTokenGoesBack(t *testing.T) {
	for _, lostReply := range []bool{false, true} {
		t.Run(map[bool]string{false: "unused", true: "reply lost"}[lostReply], func(t *testing.T) {
			const addr = "10.0.0.10:8080"
			n1, n2, lose, clock := halfOpenPair(t, addr)
			ctx := context.Background()
			if !n2.Skip(addr) { // node 2's last request wants the instance: ask
				t.Fatal("half-open without a token is not skipped")
			}
			lose.lose.Store(lostReply)
			n2.SyncOnce(ctx) // Redis grants node 2 the budget of 1
			lose.lose.Store(false)
			if held := n2.get(addr).tokens.Load() > 0; held == lostReply { // Skip would ask again
				t.Fatalf("node 2 holds a token: %v, its reply lost: %v", held, lostReply)
			}
			// Node 2 has no more traffic for the instance; node 1 has.
			n1.Skip(addr)
			n1.SyncOnce(ctx)
			if _, err := n1.Allow(addr); !errors.Is(err, ErrOpen) {
				t.Fatalf("node 1 got a second probe of a budget of 1: %v", err)
			}
			// Node 2 keeps syncing; an unused token goes back after grantIdle.
			clock.Add(grantIdle*n2.o.SyncInterval + time.Millisecond)
			n2.SyncOnce(ctx)
			if _, err := n2.Allow(addr); !errors.Is(err, ErrOpen) {
				t.Fatalf("node 2 still probes with a token it gave back: %v", err)
			}
			n1.Skip(addr)
			n1.SyncOnce(ctx)
			probe, err := n1.Allow(addr)
			if err != nil {
				t.Fatalf("node 1 gets no probe while node 2 sits on the budget (until ProbeTimeout): %v", err)
			}
			probe.Done(Success)
			n1.SyncOnce(ctx)
			n2.SyncOnce(ctx)
			if n1.State(addr) != Closed || n2.State(addr) != Closed {
				t.Fatalf("probe success did not close everywhere: %s, %s", n1.State(addr), n2.State(addr))
			}
		})
	}
}
