package breaker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// State of one backend instance's breaker.
type State int32

const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// ErrOpen is returned by Allow for an open instance (or a half-open one
// whose probe budget is spent). errors.As gives an *OpenError.
var ErrOpen = errors.New("breaker: open")

// OpenError carries when the instance may be tried again.
type OpenError struct {
	Addr       string
	RetryAfter time.Duration
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("breaker: %s open, retry after %s", e.Addr, e.RetryAfter)
}

func (e *OpenError) Unwrap() error { return ErrOpen }

// Client is the part of a go-redis client the cluster sync uses;
// *redis.Client and *redis.ClusterClient satisfy it.
type Client interface {
	Pipeline() redis.Pipeliner
}

// Options configures a Breakers set. Zero values mean the defaults.
type Options struct {
	Settings
	// Redis shares counts and state between Kong nodes; nil keeps every
	// decision local.
	Redis Client
	// Prefix starts every key (config redis.key_prefix). Default "sr".
	Prefix string
	// Scope separates breaker sets sharing one Redis with different
	// settings (e.g. the registry service name). May be empty.
	Scope string
	// SyncInterval between cluster syncs. Default 200ms.
	SyncInterval time.Duration
	// SyncTimeout bounds one sync round trip. Default SyncInterval/2.
	SyncTimeout time.Duration
	// IdleTTL drops closed instances nobody recorded for this long.
	// Default 10m.
	IdleTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger gets one line per state change and per Redis up/down.
	Logger *slog.Logger
}

// Breakers is the set of breakers of one config, one per backend instance
// address. Safe for concurrent use; meant to live for the process.
type Breakers struct {
	o     Options
	id    string   // this node in the cluster's probe claims
	insts sync.Map // addr → *instance
	kick  chan struct{}

	syncOK    atomic.Bool // the last sync reached Redis
	syncs     atomic.Int64
	syncFails atomic.Int64
	changes   [3]atomic.Int64 // state changes into Closed, Open, HalfOpen
}

// New returns a Breakers set. Cluster sync runs only inside Run.
func New(o Options) (*Breakers, error) {
	if err := o.Settings.defaults(); err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = "sr"
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 200 * time.Millisecond
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = o.SyncInterval / 2
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Breakers{o: o, id: rand.Text(), kick: make(chan struct{}, 1)}, nil
}

// Settings returns the effective settings (defaults applied).
func (b *Breakers) Settings() *Settings { return &b.o.Settings }

type instance struct {
	addr      string
	state     atomic.Int32
	openUntil atomic.Int64 // ns, local clock
	gen       atomic.Int64 // cluster generation of the last open period known here
	trips     atomic.Int32
	consec    atomic.Int32
	tokens    atomic.Int32 // half-open probes this node may still admit
	probesOut atomic.Int32 // admitted probes whose outcome is pending
	lastUsed  atomic.Int64 // ns
	closedAt  atomic.Int64 // ns
	halfSince atomic.Int64 // ns, when the current half-open period began here
	grantedAt atomic.Int64 // ns, when the cluster last granted this node a probe token
	demand    atomic.Bool  // a request wanted this instance while it had no probe token
	win       window

	// Since the last sync (swapped out by it).
	dCalls, dFails atomic.Int64
	dSuccess       atomic.Bool // a success happened: consec is a fresh tail
	tripped        atomic.Bool // opened locally: tell the cluster
	probeOK        atomic.Bool // a probe succeeded: tell the cluster

	mu sync.Mutex // state transitions only, never on the closed-state hot path
}

func (b *Breakers) get(addr string) *instance {
	if v, ok := b.insts.Load(addr); ok {
		return v.(*instance)
	}
	in := &instance{addr: addr}
	in.win.width = int64(b.o.Window) / buckets
	in.lastUsed.Store(b.o.Now().UnixNano())
	v, _ := b.insts.LoadOrStore(addr, in)
	return v.(*instance)
}

// Ticket is an admission; Done records its outcome. A zero Ticket (from a
// refusal) ignores Done. It is a value: Allow allocates nothing.
type Ticket struct {
	b     *Breakers
	in    *instance
	probe bool
}

// Done records the outcome of the admitted call.
func (t Ticket) Done(o Outcome) {
	if t.in != nil {
		t.b.record(t.in, o, t.probe)
	}
}

// Allow admits a call to addr or refuses it with an *OpenError (ErrOpen).
// Closed: one atomic load. Half-open: takes one of this node's probe
// tokens, granted by the cluster sync out of HalfOpenMaxCalls per period
// (or locally while Redis is unreachable).
func (b *Breakers) Allow(addr string) (Ticket, error) {
	in := b.get(addr)
	if State(in.state.Load()) == Closed {
		return Ticket{b: b, in: in}, nil
	}
	now := b.o.Now().UnixNano()
	if State(in.state.Load()) == Open {
		if until := in.openUntil.Load(); now < until {
			return Ticket{}, &OpenError{Addr: addr, RetryAfter: time.Duration(until - now)}
		}
		b.toHalfOpen(in)
	}
	switch State(in.state.Load()) {
	case Closed:
		return Ticket{b: b, in: in}, nil
	case HalfOpen:
		for {
			n := in.tokens.Load()
			if n <= 0 {
				in.demand.Store(true) // ask the cluster for a token at the next sync
				return Ticket{}, &OpenError{Addr: addr, RetryAfter: b.o.SyncInterval}
			}
			if in.tokens.CompareAndSwap(n, n-1) {
				in.probesOut.Add(1)
				return Ticket{b: b, in: in, probe: true}, nil
			}
		}
	}
	return Ticket{}, &OpenError{Addr: addr, RetryAfter: time.Duration(max(0, in.openUntil.Load()-now))}
}

// Record is Allow's second step when the ticket cannot travel from the
// access phase to the log phase: it records an outcome for addr. In
// half-open it counts only while a probe admitted on this node is pending,
// so late outcomes of calls made before the trip do not close the breaker.
func (b *Breakers) Record(addr string, o Outcome) {
	if v, ok := b.insts.Load(addr); ok {
		in := v.(*instance)
		b.record(in, o, State(in.state.Load()) == HalfOpen)
	} else if o != Ignored {
		b.record(b.get(addr), o, false)
	}
}

func (b *Breakers) record(in *instance, o Outcome, probe bool) {
	if o == Ignored {
		return
	}
	now := b.o.Now().UnixNano()
	in.lastUsed.Store(now)
	switch State(in.state.Load()) {
	case Closed:
		in.dCalls.Add(1)
		in.win.add(now, o == Failure)
		if o == Success {
			in.consec.Store(0)
			in.dSuccess.Store(true)
			return
		}
		in.dFails.Add(1)
		c := in.consec.Add(1)
		if int(c) >= b.o.FailureThreshold {
			b.trip(in, now, "consecutive failures")
			return
		}
		if b.o.FailureRatio > 0 {
			calls, fails := in.win.sum(now)
			if calls >= int64(b.o.MinCalls) && float64(fails) >= b.o.FailureRatio*float64(calls) {
				b.trip(in, now, "failure ratio")
			}
		}
	case HalfOpen:
		if !probe {
			return
		}
		for { // consume one pending probe, or ignore a straggler
			n := in.probesOut.Load()
			if n <= 0 {
				return
			}
			if in.probesOut.CompareAndSwap(n, n-1) {
				break
			}
		}
		if o == Success {
			b.close(in, now)
		} else {
			b.trip(in, now, "probe failed")
		}
	}
}

func (b *Breakers) trip(in *instance, now int64, why string) {
	in.mu.Lock()
	if State(in.state.Load()) == Open {
		in.mu.Unlock()
		return
	}
	trips := in.trips.Load()
	if now-in.closedAt.Load() > int64(b.o.MaxOpenTimeout) && State(in.state.Load()) == Closed {
		trips = 0
	}
	trips++
	in.trips.Store(trips)
	in.openUntil.Store(now + int64(b.o.openFor(int(trips))))
	in.tokens.Store(0)
	in.probesOut.Store(0)
	in.consec.Store(0)
	in.win.reset()
	b.setState(in, Open)
	in.tripped.Store(true)
	in.mu.Unlock()
	b.o.Logger.Info("breaker opened", "addr", in.addr, "reason", why, "trips", trips)
	select { // tell the cluster now, not at the next tick
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *Breakers) close(in *instance, now int64) {
	in.mu.Lock()
	if State(in.state.Load()) == Closed {
		in.mu.Unlock()
		return
	}
	b.closeLocked(in, now)
	in.probeOK.Store(true)
	in.mu.Unlock()
	b.o.Logger.Info("breaker closed", "addr", in.addr)
	select { // the other nodes wait for the cluster: tell it now
	case b.kick <- struct{}{}:
	default:
	}
}

// closeLocked closes in with fresh counts; in.mu is held. Closing here and
// closing on the cluster's word (sync.go) are the same transition.
func (b *Breakers) closeLocked(in *instance, now int64) {
	in.consec.Store(0)
	in.win.reset()
	in.tokens.Store(0)
	in.probesOut.Store(0)
	in.closedAt.Store(now)
	b.setState(in, Closed)
}

// toHalfOpen ends an expired open period. While the cluster sync works the
// probe tokens come from it (the budget is cluster-wide); without Redis this
// node grants itself the whole budget.
func (b *Breakers) toHalfOpen(in *instance) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if State(in.state.Load()) != Open || b.o.Now().UnixNano() < in.openUntil.Load() {
		return
	}
	tokens := int32(0)
	if b.o.Redis == nil || !b.syncOK.Load() {
		tokens = int32(b.o.HalfOpenMaxCalls)
	}
	now := b.o.Now().UnixNano()
	in.tokens.Store(tokens)
	in.probesOut.Store(0)
	in.halfSince.Store(now)
	in.grantedAt.Store(now)
	b.setState(in, HalfOpen)
}

// State reports addr's state (Closed for an unknown addr). An open state
// whose period has passed reports HalfOpen.
func (b *Breakers) State(addr string) State {
	v, ok := b.insts.Load(addr)
	if !ok {
		return Closed
	}
	in := v.(*instance)
	s := State(in.state.Load())
	if s == Open && b.o.Now().UnixNano() >= in.openUntil.Load() {
		return HalfOpen
	}
	return s
}

// Skip tells the instance picker to pass over addr: it is open, or
// half-open with no probe this node could send. It reserves nothing; call
// Allow on the instance finally picked. Asking about a half-open instance
// is what makes this node ask the cluster for a probe token, so tokens go
// to nodes that have traffic for the instance.
func (b *Breakers) Skip(addr string) bool {
	_, ok := b.retryAfter(addr, b.o.Now().UnixNano())
	return ok
}

func (b *Breakers) retryAfter(addr string, now int64) (time.Duration, bool) {
	v, ok := b.insts.Load(addr)
	if !ok {
		return 0, false
	}
	in := v.(*instance)
	switch State(in.state.Load()) {
	case Open:
		if until := in.openUntil.Load(); now < until {
			return time.Duration(until - now), true
		}
		if b.o.Redis != nil && b.syncOK.Load() { // half-open; tokens come from the sync
			in.demand.Store(true)
			return b.o.SyncInterval, true
		}
	case HalfOpen:
		if in.tokens.Load() <= 0 {
			in.demand.Store(true)
			return b.o.SyncInterval, true
		}
	}
	return 0, false
}

// AllOpen reports whether every addr would be skipped and, if so, the
// shortest wait until one may be tried (for 503 + Retry-After). An empty
// list is not "all open".
func (b *Breakers) AllOpen(addrs []string) (retryAfter time.Duration, all bool) {
	if len(addrs) == 0 {
		return 0, false
	}
	now := b.o.Now().UnixNano()
	for i, a := range addrs {
		d, skip := b.retryAfter(a, now)
		if !skip {
			return 0, false
		}
		if i == 0 || d < retryAfter {
			retryAfter = d
		}
	}
	return retryAfter, true
}

// Run syncs with the cluster every SyncInterval (and at once after a local
// trip or a successful probe) until ctx ends. Without Options.Redis it only
// drops idle instances.
func (b *Breakers) Run(ctx context.Context) {
	t := time.NewTicker(b.o.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kick:
		}
		b.SyncOnce(ctx)
	}
}

// RetryAfterSeconds renders a wait for the Retry-After header of the 503
// sent when every instance is open: whole seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
