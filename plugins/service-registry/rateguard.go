package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
)

// rateContentType is the content type of Kong's own error responses
// (kong.response.error), used by Kong's rate-limiting plugin.
const rateContentType = "application/json; charset=utf-8"

// rateGuard is the rate limit of one config.
type rateGuard struct {
	lim    *ratelimit.Limiter
	limits []ratelimit.Limit
	by     ratelimit.LimitBy
	scope  string // Kong's __plugin_id: counters per plugin entity, as Kong does
	value  string // the identity when it comes from the config (service, route); "" asks the router
	header string
	hide   bool
	code   int
	body   []byte
	stats  *rateStats // this plugin entity's decisions (metrics.go)
}

func (c *Config) newRateGuard(b *backend) (*rateGuard, error) {
	rl := c.RateLimit
	by, err := ratelimit.ParseLimitBy(rl.LimitBy)
	if err != nil {
		return nil, fmt.Errorf("rate_limit.limit_by: %w", err)
	}
	if rl.PerIP {
		by = ratelimit.ByIP
	}
	policy := ratelimit.FailOpen
	if !rl.FaultTolerant {
		policy = ratelimit.FailClosed
	}
	g := &rateGuard{
		lim:    b.limiter(policy),
		limits: ratelimit.FromConfig(rl.RequestsPerSecond, rl.RequestsPerMin, rl.Burst),
		by:     by,
		scope:  firstNonEmpty(c.pluginID, c.Service, c.serviceID),
		header: rl.HeaderName,
		hide:   rl.HideClientHeaders,
		code:   rl.ErrorCode,
		body:   ratelimit.Body(rl.ErrorMessage),
		stats:  metrics.rate(c.pluginID),
	}
	switch by {
	case ratelimit.ByService:
		// Kong counts by service id; the registry name is as stable. A
		// global plugin has neither: check asks the router per request.
		g.value = firstNonEmpty(c.serviceID, c.Service)
	case ratelimit.ByRoute:
		// Kong sends route_id only to a route-scoped plugin; otherwise
		// check asks the router per request.
		g.value = c.routeID
	}
	return g, nil
}

// identity is the limit_by kind and value of this request, with Kong's
// fallback to the client IP when the chosen identity is empty.
func (g *rateGuard) identity(k kongAPI) (ratelimit.LimitBy, string) {
	by, value := g.by, g.value
	switch by {
	case ratelimit.ByIP:
		value, _ = k.ForwardedIP()
	case ratelimit.ByConsumer:
		value, _ = k.ConsumerID()
	case ratelimit.ByHeader:
		value, _ = k.RequestHeader(g.header)
	case ratelimit.ByService:
		if value == "" {
			// Kong's rate-limiting: kong.router.get_service().id.
			value = matchedServiceID(k)
		}
	case ratelimit.ByRoute:
		if value == "" {
			value, _, _ = k.RouterRoute()
		}
	}
	if value == "" && by != ratelimit.ByIP {
		// Like Kong's rate-limiting: no identity → the client IP.
		by = ratelimit.ByIP
		value, _ = k.ForwardedIP()
	}
	return by, value
}

// check runs the rate limit; false when it answered the client itself.
func (g *rateGuard) check(k kongAPI) bool {
	by, value := g.identity(k)
	res, err := g.lim.Allow(context.Background(), ratelimit.Key(g.scope, by, value), g.limits)
	if err != nil {
		if !errors.Is(err, ratelimit.ErrUnavailable) {
			logThrottled("rate-limit-error", "service-registry: rate limit failed", "error", err)
		}
		g.stats.add(rateError, ratelimit.SourceRedis)
		// fault_tolerant = false: Kong's rate-limiting answers 500.
		k.ExitHeaders(500, internalError, map[string][]string{"Content-Type": {rateContentType}})
		return false
	}
	h := ratelimit.Headers(&res, g.hide)
	if !res.Allowed {
		g.stats.add(rateDenied, res.Source)
		if h == nil {
			h = make(map[string][]string, 1)
		}
		h["Content-Type"] = []string{rateContentType}
		k.ExitHeaders(g.code, g.body, h)
		return false
	}
	g.stats.add(rateAdmitted, res.Source)
	if h != nil {
		if err := k.SetHeaders(h); err != nil {
			logThrottled("rate-limit-headers", "service-registry: set_headers failed", "error", err)
		}
	}
	return true
}

// limiter returns the backend's limiter for a failure policy (one per
// Redis client and policy, for the life of the client).
func (b *backend) limiter(p ratelimit.Policy) *ratelimit.Limiter {
	b.guardMu.Lock()
	defer b.guardMu.Unlock()
	if l := b.limiters[p]; l != nil {
		return l
	}
	if b.limiters == nil {
		b.limiters = map[ratelimit.Policy]*ratelimit.Limiter{}
	}
	l := ratelimit.New(b.rdb, ratelimit.Options{Prefix: b.prefix, Timeout: b.timeout, Policy: p, Logger: logger()})
	b.limiters[p] = l
	return l
}

// stopLimiters ends the limiters' background work before the client
// closes: a lease fetch under way would fail on the closed client and
// start a probe. A late request still decides with them (Close starts
// nothing new).
func (b *backend) stopLimiters() {
	b.guardMu.Lock()
	ls := make([]*ratelimit.Limiter, 0, len(b.limiters))
	for _, l := range b.limiters {
		ls = append(ls, l)
	}
	b.guardMu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}
