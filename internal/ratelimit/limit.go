package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// MaxLimits is how many limits one request may be checked against (the
// plugin uses at most two: per second and per minute).
const MaxLimits = 4

// Limit is one GCRA limit: Rate requests per Period, plus Burst requests
// that may arrive at once ahead of the steady pace.
//
// The guarantee, cluster-wide: in every rolling window of length Period at
// most Rate+Burst requests are admitted. Burst 0 means perfectly paced
// traffic (one request every Period/Rate); a client that sends clumps needs
// a Burst. This is stricter than Kong's fixed windows, which admit up to
// 2×Rate across a window boundary.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// PerSecond is rate requests per second with the given burst.
func PerSecond(rate, burst int) Limit { return Limit{Rate: rate, Period: time.Second, Burst: burst} }

// PerMinute is rate requests per minute with the given burst.
func PerMinute(rate, burst int) Limit { return Limit{Rate: rate, Period: time.Minute, Burst: burst} }

// The limiter's real bounds, for config schemas ("config Kong accepts, the
// plugin runs"): a rate finer than one request per microsecond has no
// emission interval in the script's unit, and a burst beyond MaxBurst would
// push a minute limit's capacity (interval × (burst+1) µs) past the range a
// Lua double holds exactly on top of a Unix-µs timestamp.
const (
	MaxPerSecond = 1_000_000  // requests per second: about one per µs
	MaxPerMinute = 60_000_000 // requests per minute: about one per µs
	MaxBurst     = 1_000_000
)

// ErrInvalidLimit reports a limit the limiter cannot enforce.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

func (l Limit) validate() error {
	if l.Rate <= 0 || l.Period <= 0 || l.Burst < 0 {
		return fmt.Errorf("%w: %d per %s burst %d", ErrInvalidLimit, l.Rate, l.Period, l.Burst)
	}
	if int64(l.Rate) > l.Period.Microseconds() {
		return fmt.Errorf("%w: %d per %s is finer than a microsecond", ErrInvalidLimit, l.Rate, l.Period)
	}
	if l.Burst > MaxBurst {
		return fmt.Errorf("%w: burst %d over %d", ErrInvalidLimit, l.Burst, MaxBurst)
	}
	return nil
}

// SlackDivisor sets each limit's slack: Period/SlackDivisor (20 ms for a
// per-second limit, 1.2 s for a per-minute one). A unit of capacity a node
// leased (see lease.go) may be spent up to the slack before or after its
// place in the GCRA schedule; to keep the rolling-window guarantee exact,
// the schedule is laid over Period + 2×slack instead of Period (see
// interval). The price: the sustained rate is Rate per 1.04 × Period.
const SlackDivisor = 50

// slack is how far from its GCRA slot a leased unit may be spent, in µs.
func (l Limit) slack() int64 { return l.Period.Microseconds() / SlackDivisor }

// interval is the emission interval in microseconds (the Lua script's unit):
// Period + 2×slack spread over Rate, rounded up. Rounding down would let a
// rolling period hold one request more than Rate+Burst (3/s → 333333 µs
// fits 3 intervals in a second); the slack pays for leased units spent off
// their slot (see doc.go, "The bound").
func (l Limit) interval() int64 {
	p, r := l.Period.Microseconds()+2*l.slack(), int64(l.Rate)
	return (p + r - 1) / r
}

// capacity is how far ahead of now the theoretical arrival time may run.
func (l Limit) capacity() int64 { return l.interval() * int64(l.Burst+1) }

// periodName labels the Redis key and the X-RateLimit-*-<Name> headers.
func (l Limit) periodName() string {
	switch l.Period {
	case time.Second:
		return "Second"
	case time.Minute:
		return "Minute"
	case time.Hour:
		return "Hour"
	case 24 * time.Hour:
		return "Day"
	}
	return ""
}

// keySuffix names the limit inside the request's hash-tagged key.
func (l Limit) keySuffix() string {
	switch l.Period {
	case time.Second:
		return "s"
	case time.Minute:
		return "m"
	case time.Hour:
		return "h"
	case 24 * time.Hour:
		return "d"
	}
	return fmt.Sprintf("%dms", l.Period.Milliseconds())
}

// PeriodResult is the state of one limit after a decision.
type PeriodResult struct {
	Limit Limit
	// Remaining is how many more requests this limit would admit right now.
	Remaining int
	// RetryAfter is 0 when this limit admitted the request, otherwise how
	// long until it would admit one.
	RetryAfter time.Duration
	// ResetAfter is how long until this limit is back to full capacity.
	ResetAfter time.Duration
}

// Source says who made a decision.
type Source uint8

const (
	SourceRedis    Source = iota // the Lua script on Redis
	SourceCache                  // the local denied-key cache (no Redis call)
	SourceFailOpen               // Redis failed, fault-tolerant policy admitted
	SourceLease                  // a unit of this node's lease (no Redis call)
)

func (s Source) String() string {
	switch s {
	case SourceRedis:
		return "redis"
	case SourceCache:
		return "cache"
	case SourceFailOpen:
		return "fail-open"
	case SourceLease:
		return "lease"
	}
	return "unknown"
}

// Result is one decision. It is a value: no allocation per decision.
type Result struct {
	Allowed bool
	Source  Source
	n       int
	periods [MaxLimits]PeriodResult
}

// Periods returns the per-limit results in the order the limits were given.
// Empty when the fault-tolerant policy admitted without knowing the state.
func (r *Result) Periods() []PeriodResult { return r.periods[:r.n] }

// RetryAfter is how long until a denied request would be admitted
// (the largest RetryAfter of the denying limits); 0 when allowed.
func (r *Result) RetryAfter() time.Duration {
	var d time.Duration
	for _, p := range r.periods[:r.n] {
		d = max(d, p.RetryAfter)
	}
	return d
}

// FromConfig maps the plugin's rate_limit config to limits:
// requests_per_second and requests_per_min (0 = unset) each become a limit,
// and burst applies to each of them. Nil when neither is set.
func FromConfig(perSecond, perMinute, burst int) []Limit {
	var ls []Limit
	if perSecond > 0 {
		ls = append(ls, PerSecond(perSecond, burst))
	}
	if perMinute > 0 {
		ls = append(ls, PerMinute(perMinute, burst))
	}
	return ls
}
