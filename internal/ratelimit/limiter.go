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
	// FailLocal decides with an in-process limiter holding this node's share
	// of each limit: Rate/Nodes (rounded up, at least 1) and Burst/Nodes
	// (rounded down). With Nodes right, the cluster stays near the limit
	// while Redis is away; with Nodes = 1 each node admits the full limit.
	FailLocal
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
	// Nodes is the Kong node count FailLocal divides limits by. Default 1.
	Nodes int
	// Backoff is how long after a Redis failure decisions skip Redis and
	// apply Policy directly (one request then probes). It keeps a dead Redis
	// from costing every request a full Timeout. Default 250ms.
	Backoff time.Duration
	// DenyCacheSize bounds the denied-key cache (entries). Default 65536.
	DenyCacheSize int
	// Now is the local clock (deny cache, backoff, fallback). Default time.Now.
	Now func() time.Time
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
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.DenyCacheSize <= 0 {
		o.DenyCacheSize = 65536
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
	Local       int64 // decisions by the FailLocal limiter
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
	local     *localLimiter

	down      atomic.Bool
	downUntil atomic.Int64 // unix ns on o.Now's clock
	probing   atomic.Bool

	redisCalls, redisErrors, cacheHits, failOpen, localN, unavailable atomic.Int64
}

// New returns a Limiter using c.
func New(c Client, o Options) *Limiter {
	o.defaults()
	sum := sha1.Sum([]byte(gcraScript))
	return &Limiter{
		c:         c,
		o:         o,
		sha:       hex.EncodeToString(sum[:]),
		honorsCtx: honorsDeadlines(c),
		deny:      newDenyCache(o.DenyCacheSize),
		local:     newLocalLimiter(o.Nodes, o.DenyCacheSize),
	}
}

// Stats returns the counters so far.
func (l *Limiter) Stats() Stats {
	return Stats{
		RedisCalls: l.redisCalls.Load(), RedisErrors: l.redisErrors.Load(),
		CacheHits: l.cacheHits.Load(), FailOpen: l.failOpen.Load(),
		Local: l.localN.Load(), Unavailable: l.unavailable.Load(),
	}
}

// Allow decides one request counted under key (see Key) against every limit
// at once: one EVALSHA, all-or-nothing. A key denied earlier is answered from
// the local cache until its retry-after, without Redis.
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
	if l.down.Load() && !l.mayProbe(now) {
		return l.onFailure(key, limits, now, nil)
	}
	r, err := l.eval(ctx, key, limits)
	if err != nil && ctx.Err() != nil {
		// The caller gave up (client gone): not Redis' fault, no policy.
		l.probing.Store(false)
		return Result{}, fmt.Errorf("rate limit: %w", ctx.Err())
	}
	if err != nil {
		l.redisErrors.Add(1)
		l.markDown(now, err)
		return l.onFailure(key, limits, now, err)
	}
	l.markUp()
	if !r.Allowed {
		l.deny.put(key, r, l.o.Now())
	}
	return r, nil
}

// mayProbe lets exactly one request try Redis once the backoff has passed.
func (l *Limiter) mayProbe(now time.Time) bool {
	if now.UnixNano() < l.downUntil.Load() {
		return false
	}
	return l.probing.CompareAndSwap(false, true)
}

func (l *Limiter) markDown(now time.Time, err error) {
	l.downUntil.Store(now.Add(l.o.Backoff).UnixNano())
	l.probing.Store(false)
	if l.down.CompareAndSwap(false, true) {
		l.o.Logger.Warn("rate limiter: redis unavailable, applying failure policy",
			"policy", l.o.Policy.String(), "error", err)
	}
}

func (l *Limiter) markUp() {
	if l.down.Load() {
		l.probing.Store(false)
		if l.down.CompareAndSwap(true, false) {
			l.o.Logger.Info("rate limiter: redis is back")
		}
	}
}

func (l *Limiter) onFailure(key string, limits []Limit, now time.Time, cause error) (Result, error) {
	switch l.o.Policy {
	case FailClosed:
		l.unavailable.Add(1)
		if cause == nil {
			cause = errors.New("in backoff after a failure")
		}
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	case FailLocal:
		l.localN.Add(1)
		return l.local.allow(key, limits, now), nil
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
	case FailLocal:
		return "local"
	}
	return "unknown"
}

func (l *Limiter) eval(ctx context.Context, key string, limits []Limit) (Result, error) {
	var keyArr [MaxLimits]string
	var argArr [1 + 2*MaxLimits]any
	keys := keyArr[:len(limits)]
	args := argArr[:1+2*len(limits)]
	args[0] = 1
	for i, lim := range limits {
		keys[i] = redisKey(l.o.Prefix, key, lim)
		args[1+2*i] = lim.interval()
		args[2+2*i] = lim.capacity()
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	if l.honorsCtx {
		v, err := l.call(ctx, keys, args)
		if err != nil {
			return Result{}, fmt.Errorf("rate limit script: %w", err)
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
		return Result{}, fmt.Errorf("rate limit script: %w", err)
	}
	return parseReply(v, limits)
}

func (l *Limiter) call(ctx context.Context, keys []string, args []any) (any, error) {
	l.redisCalls.Add(1)
	v, err := l.c.EvalSha(ctx, l.sha, keys, args...).Result()
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		// First use on this Redis (or after a restart/flush): EVAL loads it.
		l.redisCalls.Add(1)
		v, err = l.c.Eval(ctx, gcraScript, keys, args...).Result()
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

func parseReply(v any, limits []Limit) (Result, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 1+3*len(limits) {
		return Result{}, fmt.Errorf("rate limit script: unexpected reply %T of %d", v, len(arr))
	}
	var intArr [1 + 3*MaxLimits]int64
	ints := intArr[:len(arr)]
	for i, x := range arr {
		n, ok := x.(int64)
		if !ok {
			return Result{}, fmt.Errorf("rate limit script: reply item %d is %T", i, x)
		}
		ints[i] = n
	}
	r := Result{Allowed: ints[0] == 1, Source: SourceRedis, n: len(limits)}
	for i, lim := range limits {
		r.periods[i] = PeriodResult{
			Limit:      lim,
			Remaining:  int(ints[1+3*i]),
			RetryAfter: time.Duration(ints[2+3*i]) * time.Microsecond,
			ResetAfter: time.Duration(ints[3+3*i]) * time.Microsecond,
		}
	}
	return r, nil
}

// denyCache remembers denied keys until their retry-after. A denial stays
// exact until then: no node can lower a theoretical arrival time, only push
// it further, so Redis would deny the same key too.
type denyCache struct {
	shards [16]denyShard
	max    int
}

type denyShard struct {
	mu sync.RWMutex
	m  map[string]denyEntry
}

type denyEntry struct {
	until time.Time
	at    time.Time
	r     Result
}

func newDenyCache(size int) *denyCache {
	d := &denyCache{max: max(1, size/16)}
	for i := range d.shards {
		d.shards[i].m = make(map[string]denyEntry)
	}
	return d
}

func (d *denyCache) shard(key string) *denyShard {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &d.shards[h%16]
}

// get returns the cached denial of key if it was decided on the same
// limits: a config change (new rate or burst) must reach Redis at once,
// not after the old denial's retry-after.
func (d *denyCache) get(key string, limits []Limit, now time.Time) (Result, bool) {
	s := d.shard(key)
	s.mu.RLock()
	e, ok := s.m[key]
	s.mu.RUnlock()
	if !ok || !now.Before(e.until) || !sameLimits(&e.r, limits) {
		return Result{}, false
	}
	r := e.r
	r.Source = SourceCache
	elapsed := now.Sub(e.at)
	for i := range r.periods[:r.n] {
		p := &r.periods[i]
		if p.RetryAfter > 0 {
			p.RetryAfter = max(time.Microsecond, p.RetryAfter-elapsed)
		}
		p.ResetAfter = max(0, p.ResetAfter-elapsed)
	}
	return r, true
}

func sameLimits(r *Result, limits []Limit) bool {
	if r.n != len(limits) {
		return false
	}
	for i, l := range limits {
		if r.periods[i].Limit != l {
			return false
		}
	}
	return true
}

func (d *denyCache) put(key string, r Result, now time.Time) {
	ra := r.RetryAfter()
	if ra <= 0 {
		return
	}
	s := d.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= d.max {
		for k, e := range s.m {
			if !now.Before(e.until) {
				delete(s.m, k)
			}
		}
		// Still full of live denials: forget one; the cost is one Redis call.
		for k := range s.m {
			if len(s.m) < d.max {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[key] = denyEntry{until: now.Add(ra), at: now, r: r}
}
