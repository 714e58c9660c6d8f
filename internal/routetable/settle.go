package routetable

import (
	"context"
	"sync"
	"time"
)

// Settle is called by a request the table does not match, before it
// answers 404: POST /register answers once the route is in the registry's
// index, but its change-feed message may still be on its way (on the
// socket, in go-redis, or taken from the feed and not yet applied), so the
// client's first request can arrive before the table has the route.
//
// Settle reads the registry generation (one GET, bounded by d), which
// counts every write whose index update is done, so every registration
// answered before the request. When the table has checked the index at
// that generation already, the miss is real and Settle returns at once.
// Otherwise it asks the table's goroutine to check the index now (the
// backstop poll's check: re-read the services the index and the table
// disagree on) and waits, at most d, until that check has covered the
// generation. So an unknown route costs one GET while the registry is
// unchanged, plus one index read per registry change; concurrent misses
// share their GETs (rounds) and their check.
func (t *Table) Settle(d time.Duration) {
	if t.down.Load() {
		return // Redis is known down: serve the last state at once
	}
	ctx, cancel := context.WithTimeout(t.ctx, d)
	defer cancel()
	gen, err := t.genRounds.read(ctx, t.src.Generation)
	if err != nil || t.settled.Load() >= gen {
		return
	}
	select {
	case t.settleReq <- struct{}{}:
	default: // a check is asked for already
	}
	for {
		ch := t.settledCh.Load()
		if t.settled.Load() >= gen {
			return
		}
		select {
		case <-*ch:
		case <-ctx.Done():
			return
		}
	}
}

// settle records that the table reflects the registry at generation gen
// (run goroutine only) and wakes Settle's waiters.
func (t *Table) settle(gen int64) {
	if gen > t.settled.Load() {
		t.settled.Store(gen)
	}
	next := make(chan struct{})
	close(*t.settledCh.Swap(&next))
}

// rounds shares generation reads between concurrent callers without ever
// giving a caller a value read before it asked: one read is in flight at a
// time; callers arriving meanwhile join the next round, which starts when
// the read in flight ends and serves all of them. A flood of misses costs
// one GET per round trip, not one per request.
type rounds struct {
	mu       sync.Mutex
	inFlight bool
	next     *round // the round callers join; nil until one waits
}

type round struct {
	ctx    context.Context // its first caller's: bounded by timeout_ms
	done   chan struct{}
	joined int // callers served (tests)
	gen    int64
	err    error
}

func (r *rounds) read(ctx context.Context, get func(context.Context) (int64, error)) (int64, error) {
	r.mu.Lock()
	if r.next == nil {
		r.next = &round{ctx: ctx, done: make(chan struct{})}
	}
	mine := r.next
	mine.joined++
	start := !r.inFlight
	if start {
		r.inFlight, r.next = true, nil
	}
	r.mu.Unlock()
	if start {
		r.run(mine, get)
	}
	select {
	case <-mine.done:
		return mine.gen, mine.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run does one round, then hands the in-flight slot to the round callers
// joined meanwhile (its own goroutine, so this caller is not held).
func (r *rounds) run(cur *round, get func(context.Context) (int64, error)) {
	cur.gen, cur.err = get(cur.ctx)
	close(cur.done)
	r.mu.Lock()
	next := r.next
	r.next = nil
	r.inFlight = next != nil
	r.mu.Unlock()
	if next != nil {
		go r.run(next, get)
	}
}
