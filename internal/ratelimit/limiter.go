package ratelimit

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client is the part of a go-redis client the limiter uses. *redis.Client,
// *redis.ClusterClient and *redis.Ring all satisfy it. Give it a client with
// redis.Options.ContextTimeoutEnabled = true: the call then runs on the
// caller's goroutine and the context deadline bounds it. Any other client
// is called on a helper goroutine per decision so the decision still
// returns at the deadline (a little slower, and calls to a frozen Redis
// linger until the client's own ReadTimeout).
type Client interface {
	EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd
	Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd
}

// Policy is what happens to a decision when Redis fails or times out.
type Policy uint8

const (
	// FailOpen admits (config fault_tolerant = true, Kong's default).
	FailOpen Policy = iota
	// FailClosed returns ErrUnavailable; the plugin answers 500 like Kong's
	// rate-limiting plugin with fault_tolerant = false.
	FailClosed
)

// ErrUnavailable wraps the Redis error when the policy is FailClosed.
var ErrUnavailable = errors.New("ratelimit: redis unavailable")

// Options configures a Limiter. Zero values mean the documented defaults.
type Options struct {
	// Prefix starts every key (config redis.key_prefix). Default "sr".
	Prefix string
	// Timeout bounds each Redis call (config redis.timeout_ms). Default 20ms.
	Timeout time.Duration
	// Policy on Redis failure. Default FailOpen.
	Policy Policy
	// Backoff is the interval of the background probe that runs while
	// Redis is down: after a failure no decision waits on Redis (each one
	// applies Policy at once) until a probe (a trivial script, bounded by
	// Timeout) succeeds. Default 250ms.
	Backoff time.Duration
	// DenyCacheSize bounds the denied-key cache (entries). Default 65536.
	DenyCacheSize int
	// LeaseCacheSize bounds the per-key lease table (entries). Default 65536.
	LeaseCacheSize int
	// MaxLease is the most units one lease may ask for. Default 1024; 1
	// turns leases off (every admitted request is one Redis call).
	MaxLease int
	// Now is the local clock (deny cache, leases, backoff). Default time.Now.
	Now func() time.Time
	// RedisNow, for tests only, replaces Redis TIME in the script with this
	// clock (µs), so a test can drive every node and Redis on one fake
	// clock; its keys then never expire (script.go). Nil in production:
	// decisions use Redis' own clock.
	RedisNow func() int64
	// Logger gets one line per Redis up/down transition. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "sr"
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Millisecond
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.DenyCacheSize <= 0 {
		o.DenyCacheSize = 65536
	}
	if o.LeaseCacheSize <= 0 {
		o.LeaseCacheSize = 65536
	}
	if o.MaxLease <= 0 {
		o.MaxLease = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Stats are cumulative counters, for metrics and tests.
type Stats struct {
	RedisCalls  int64 // script calls sent
	RedisErrors int64 // calls that failed or timed out
	CacheHits   int64 // denials answered by the deny cache
	FailOpen    int64 // admissions by FailOpen while Redis was failing
	Leased      int64 // admissions spent from a lease (no Redis call)
	Unavailable int64 // ErrUnavailable returned (FailClosed)
}

// Limiter decides requests against Redis. It is safe for concurrent use and
// meant to live for the process (one per Redis client), not per config.
type Limiter struct {
	c   Client
	o   Options
	sha string
	// honorsCtx: the client bounds its I/O by context deadlines, so the
	// call can run on the caller's goroutine.
	honorsCtx bool
	deny      *denyCache
	leases    *leaseTable

	down atomic.Bool

	// Background work (lease prefetches, the probe) is counted in bg so
	// Close can wait for it; stop ends the probe. bgMu orders a start
	// against Close.
	bgMu   sync.Mutex
	closed bool
	stop   chan struct{}
	bg     sync.WaitGroup

	redisCalls, redisErrors, cacheHits, failOpen, leased, unavailable atomic.Int64
}

// New returns a Limiter using c.
func New(c Client, o Options) *Limiter {
	o.defaults()
	sum := sha1.Sum([]byte(leaseScript))
	return &Limiter{
		c:         c,
		o:         o,
		sha:       hex.EncodeToString(sum[:]),
		honorsCtx: honorsDeadlines(c),
		deny:      newDenyCache(o.DenyCacheSize),
		leases:    newLeaseTable(o.LeaseCacheSize),
		stop:      make(chan struct{}),
	}
}

// Close ends the limiter's background work (the probe while Redis is down,
// lease prefetches under way) and waits for it: close the client after it.
// Allow still decides after Close but starts nothing in the background.
func (l *Limiter) Close() {
	l.bgMu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
	}
	l.bgMu.Unlock()
	l.bg.Wait()
}

// startBackground counts one background goroutine about to start; false
// after Close. The goroutine calls l.bg.Done.
func (l *Limiter) startBackground() bool {
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	if l.closed {
		return false
	}
	l.bg.Add(1)
	return true
}

// Stats returns the counters so far.
func (l *Limiter) Stats() Stats {
	return Stats{
		RedisCalls: l.redisCalls.Load(), RedisErrors: l.redisErrors.Load(),
		CacheHits: l.cacheHits.Load(), FailOpen: l.failOpen.Load(),
		Leased: l.leased.Load(), Unavailable: l.unavailable.Load(),
	}
}

// Allow decides one request counted under key (see Key) against every limit
// at once, all-or-nothing. A key denied earlier is answered from the local
// cache until its retry-after, and a busy key from this node's lease
// (lease.go), both without Redis; otherwise one EVALSHA decides, asking for
// a lease when the key is busy.
//
// The error is non-nil only for invalid limits, when ctx ended before the
// decision (the client is gone), or, with FailClosed, when Redis failed
// (errors.Is(err, ErrUnavailable)).
func (l *Limiter) Allow(ctx context.Context, key string, limits []Limit) (Result, error) {
	if len(limits) == 0 || len(limits) > MaxLimits {
		return Result{}, fmt.Errorf("%w: %d limits (want 1..%d)", ErrInvalidLimit, len(limits), MaxLimits)
	}
	for _, lim := range limits {
		if err := lim.validate(); err != nil {
			return Result{}, err
		}
	}
	now := l.o.Now()
	if r, ok := l.deny.get(key, limits, now); ok {
		l.cacheHits.Add(1)
		return r, nil
	}
	ns := now.UnixNano()
	e := l.leases.entry(key, ns)
	if r, ok, pre := e.spend(limits, ns); ok {
		l.leased.Add(1)
		if pre > 1 {
			if l.startBackground() {
				var own [MaxLimits]Limit // the caller's slice is its own again
				go l.prefetch(key, own, copy(own[:], limits), e, min(pre, l.o.MaxLease))
			} else {
				e.done() // closed: the lease is not renewed
			}
		}
		return r, nil
	}
	if l.down.Load() {
		return l.onFailure(now, nil)
	}
	want := e.want(limits, ns)
	if l.o.MaxLease <= 1 {
		want = 1
	}
	g, err := l.eval(ctx, key, limits, min(want, l.o.MaxLease))
	if want > 1 {
		e.done()
	}
	if err != nil && ctx.Err() != nil {
		// The caller gave up (client gone): not Redis' fault, no policy.
		return Result{}, fmt.Errorf("rate limit: %w", ctx.Err())
	}
	if err != nil {
		l.redisErrors.Add(1)
		l.markDown(err)
		return l.onFailure(now, err)
	}
	if !g.r.Allowed {
		l.deny.put(key, g.r, l.o.Now())
	} else if g.units > 1 {
		e.store(limits, &g, ns)
		g.r = unitResult(&g.first, limits, 0, g.redisNow)
	}
	return g.r, nil
}

// prefetch fetches the next lease of a busy key in the background, before
// the current one runs out, so no request of that key waits for Redis.
func (l *Limiter) prefetch(key string, own [MaxLimits]Limit, k int, e *leaseEntry, n int) {
	defer l.bg.Done()
	defer e.done()
	if l.down.Load() {
		return
	}
	ls := own[:k]
	sent := l.o.Now().UnixNano()
	g, err := l.eval(context.Background(), key, ls, n)
	if err != nil {
		l.redisErrors.Add(1)
		l.markDown(err)
		return
	}
	if g.units > 0 {
		e.storeNext(ls, &g, sent)
	}
}

// markDown switches decisions to the failure policy and starts the
// background probe that switches them back.
func (l *Limiter) markDown(err error) {
	if l.down.CompareAndSwap(false, true) {
		l.o.Logger.Warn("rate limiter: redis unavailable, applying failure policy",
			"policy", l.o.Policy.String(), "error", err)
		if l.startBackground() {
			go l.probe()
		}
	}
}

// probe tries Redis every Backoff until it answers; requests never wait on
// a Redis that is down. It ends with Close or a closed client too.
func (l *Limiter) probe() {
	defer l.bg.Done()
	t := time.NewTicker(l.o.Backoff)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
		err := l.c.Eval(ctx, "return 1", nil).Err()
		cancel()
		if err == nil || errors.Is(err, redis.ErrClosed) {
			if l.down.CompareAndSwap(true, false) && err == nil {
				l.o.Logger.Info("rate limiter: redis is back")
			}
			return
		}
	}
}

func (l *Limiter) onFailure(now time.Time, cause error) (Result, error) {
	switch l.o.Policy {
	case FailClosed:
		l.unavailable.Add(1)
		if cause == nil {
			cause = errors.New("down since an earlier failure, waiting for the background probe")
		}
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	default:
		l.failOpen.Add(1)
		return Result{Allowed: true, Source: SourceFailOpen}, nil
	}
}

func (p Policy) String() string {
	switch p {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return "unknown"
}

// grant is the script's answer: units granted (0 = denied), Redis' time,
// each limit's slot of the first unit, and the decision of the first unit.
type grant struct {
	units    int
	redisNow int64
	first    [MaxLimits]int64
	r        Result
}

func (l *Limiter) eval(ctx context.Context, key string, limits []Limit, want int) (grant, error) {
	var keyArr [MaxLimits]string
	var argArr [2 + 3*MaxLimits]any
	keys := keyArr[:len(limits)]
	args := argArr[:2+3*len(limits)]
	args[0], args[1] = want, ""
	if l.o.RedisNow != nil {
		args[1] = l.o.RedisNow()
	}
	for i, lim := range limits {
		keys[i] = redisKey(l.o.Prefix, key, lim)
		args[2+3*i] = lim.interval()
		args[3+3*i] = lim.capacity()
		args[4+3*i] = lim.slack()
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	if l.honorsCtx {
		v, err := l.call(ctx, keys, args)
		if err != nil {
			return grant{}, fmt.Errorf("rate limit script: %w", err)
		}
		return parseReply(v, limits)
	}
	// A client that may ignore the deadline runs beside us, so the decision
	// still returns at the deadline; the buffered channel lets a late call
	// finish and exit.
	type reply struct {
		v   any
		err error
	}
	done := make(chan reply, 1)
	go func() {
		v, err := l.call(ctx, keys, args)
		done <- reply{v, err}
	}()
	var v any
	var err error
	select {
	case r := <-done:
		v, err = r.v, r.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return grant{}, fmt.Errorf("rate limit script: %w", err)
	}
	return parseReply(v, limits)
}

func (l *Limiter) call(ctx context.Context, keys []string, args []any) (any, error) {
	l.redisCalls.Add(1)
	v, err := l.c.EvalSha(ctx, l.sha, keys, args...).Result()
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		// First use on this Redis (or after a restart/flush): EVAL loads it.
		l.redisCalls.Add(1)
		v, err = l.c.Eval(ctx, leaseScript, keys, args...).Result()
	}
	return v, err
}

// honorsDeadlines reports whether c is a go-redis client configured to
// bound its network I/O by the context deadline.
func honorsDeadlines(c Client) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

func parseReply(v any, limits []Limit) (grant, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2+4*len(limits) {
		return grant{}, fmt.Errorf("rate limit script: unexpected reply %T of %d", v, len(arr))
	}
	var intArr [2 + 4*MaxLimits]int64
	ints := intArr[:len(arr)]
	for i, x := range arr {
		n, ok := x.(int64)
		if !ok {
			return grant{}, fmt.Errorf("rate limit script: reply item %d is %T", i, x)
		}
		ints[i] = n
	}
	g := grant{units: int(ints[0]), redisNow: ints[1]}
	g.r = Result{Allowed: g.units >= 1, Source: SourceRedis, n: len(limits)}
	for i, lim := range limits {
		p := ints[2+4*i:]
		g.first[i] = p[0]
		g.r.periods[i] = PeriodResult{
			Limit:      lim,
			Remaining:  int(p[1]),
			RetryAfter: time.Duration(p[2]) * time.Microsecond,
			ResetAfter: time.Duration(p[3]) * time.Microsecond,
		}
	}
	return g, nil
}
