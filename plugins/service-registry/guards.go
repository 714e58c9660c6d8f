package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kong-service-registry/service-registry/internal/breaker"
	"github.com/kong-service-registry/service-registry/internal/discovery"
	"github.com/kong-service-registry/service-registry/internal/ratelimit"
)

// The two guards of the access phase, wired through the seams of compiled:
//
//	rate limit (internal/ratelimit) → breaker admission (internal/breaker)
//	→ pick → set_target; log phase: the breaker records the outcome.
//
// PDK budget (DESIGN decision 7): the limiter spends at most one call for
// the identity (get_forwarded_ip, get_consumer, get_header, or for limit by
// service/route without the id in the config router.get_service/get_route),
// plus get_forwarded_ip only when that identity is empty (Kong's fallback),
// then one set_headers for all its headers (none when hidden) or one exit;
// the breaker nothing in access and one kong.log.serialize in the log
// phase. Identities come from the config Kong sends when it has them
// (service_id, service, route_id, __plugin_id).
//
// With registry = kong, Kong's balancer picks the target: the breaker can
// only record outcomes (its counts still reach the cluster and its state is
// visible in Redis), it cannot steer traffic away from an open instance.

// rateContentType is the content type of Kong's own error responses
// (kong.response.error), used by Kong's rate-limiting plugin.
const rateContentType = "application/json; charset=utf-8"

// compileGuards builds the guards of a valid config (cp.backend is set
// whenever one of them is enabled).
func (c *Config) compileGuards(cp *compiled) error {
	if c.RateLimit.Enabled {
		g, err := c.newRateGuard(cp.backend)
		if err != nil {
			return err
		}
		cp.rateLimit = g.check
		// A global plugin picking from the registry resolves the matched
		// service for the registry name too (handler.go serviceName).
		cp.shareRouter = (g.by == ratelimit.ByService || g.by == ratelimit.ByRoute) && g.value == "" &&
			c.Registry == "redis" && c.Service == ""
	}
	if c.CircuitBreaker.Enabled {
		b, err := c.acquireBreakers(cp.backend)
		if err != nil {
			return err
		}
		cp.breakers = b
		cp.breakerCode = c.CircuitBreaker.ErrorCode
		if c.Registry == "redis" {
			cp.skip = b.Skip
		}
		addr := func(ip string, port int) string { return c.breakerAddr(cp, ip, port) }
		cp.record = func(k kongAPI) { recordOutcome(b, k, addr) }
	}
	return nil
}

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

// check runs the rate limit; false when it answered the client itself.
func (g *rateGuard) check(k kongAPI) bool {
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
	res, err := g.lim.Allow(context.Background(), ratelimit.Key(g.scope, by, value, nil), g.limits)
	if err != nil {
		if !errors.Is(err, ratelimit.ErrUnavailable) {
			logThrottled("rate-limit-error", "service-registry: rate limit failed", "error", err)
		}
		// fault_tolerant = false: Kong's rate-limiting answers 500.
		k.ExitHeaders(500, internalError, map[string][]string{"Content-Type": {rateContentType}})
		return false
	}
	h := ratelimit.Headers(&res, g.hide)
	if !res.Allowed {
		if h == nil {
			h = make(map[string][]string, 1)
		}
		h["Content-Type"] = []string{rateContentType}
		k.ExitHeaders(g.code, g.body, h)
		return false
	}
	if h != nil {
		if err := k.SetHeaders(h); err != nil {
			logThrottled("rate-limit-headers", "service-registry: set_headers failed", "error", err)
		}
	}
	return true
}

// matchedServiceID is the id of the Kong service the request matched (""
// when none), remembering its name for serviceName as it goes.
func matchedServiceID(k kongAPI) string {
	id, name, err := k.RouterService()
	if err != nil || id == "" {
		return ""
	}
	rememberServiceName(id, name)
	return id
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

// breakerSet is one running breaker.Breakers and the Configs using it.
type breakerSet struct {
	b      *breaker.Breakers
	cancel context.CancelFunc
	refs   int
}

// acquireBreakers returns the breaker set of this config's scope and
// settings, shared by every Config (and config version) with the same ones,
// and stopped a while after the last of them is garbage collected.
func (c *Config) acquireBreakers(b *backend) (*breaker.Breakers, error) {
	cb := c.CircuitBreaker
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	st := breaker.Settings{
		FailureThreshold: cb.FailureThreshold, FailureRatio: cb.FailureRatio, MinCalls: cb.MinCalls,
		Window: ms(cb.WindowMs), OpenTimeout: ms(cb.TimeoutMs), HalfOpenMaxCalls: cb.HalfOpenMaxCalls,
		FailureStatuses: breakerStatuses(cb.FailureStatuses),
	}
	// The scope must be the same on every Kong node: the registry service,
	// else the Kong service id, else the plugin id.
	scope := firstNonEmpty(c.Service, c.serviceID, c.pluginID)
	key := strconv.Quote(scope) + fmt.Sprintf("%+v", st)

	b.guardMu.Lock()
	defer b.guardMu.Unlock()
	set := b.breakers[key]
	if set == nil {
		br, err := breaker.New(breaker.Options{
			Settings: st, Redis: b.rdb, Prefix: b.prefix, Scope: scope, Logger: logger(),
			// A sync carries every known instance; give it more than one
			// request's timeout_ms, but never more than an interval.
			SyncTimeout: min(max(4*b.timeout, 50*time.Millisecond), 200*time.Millisecond),
		})
		if err != nil {
			return nil, fmt.Errorf("circuit_breaker: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go br.Run(ctx)
		set = &breakerSet{b: br, cancel: cancel}
		if b.breakers == nil {
			b.breakers = map[string]*breakerSet{}
		}
		b.breakers[key] = set
	}
	set.refs++
	runtime.AddCleanup(c, b.releaseBreakers, key)
	return set.b, nil
}

// breakerStatuses is failure_statuses as the breaker takes it: exactly
// every status 500-599 (the default) becomes nil, the breaker's own form of
// that set, which it checks with two comparisons instead of scanning 100
// entries for every try in the log phase.
func breakerStatuses(list []int) []int {
	if len(list) != 100 {
		return list
	}
	seen := [100]bool{}
	for _, s := range list {
		if s < 500 || s > 599 || seen[s-500] {
			return list
		}
		seen[s-500] = true
	}
	return nil
}

// releaseBreakers drops one user of a breaker set; the last one stops it
// after the backends' idle delay (a config change keeping the settings
// keeps the breaker states).
func (b *backend) releaseBreakers(key string) {
	b.guardMu.Lock()
	set := b.breakers[key]
	if set == nil {
		b.guardMu.Unlock()
		return
	}
	set.refs--
	last := set.refs <= 0
	b.guardMu.Unlock()
	if !last {
		return
	}
	backends.mu.Lock()
	idle := backends.idle
	backends.mu.Unlock()
	time.AfterFunc(idle, func() {
		b.guardMu.Lock()
		defer b.guardMu.Unlock()
		if cur := b.breakers[key]; cur == set && set.refs <= 0 {
			set.cancel()
			delete(b.breakers, key)
		}
	})
}

// stopBreakers stops every breaker sync of the backend.
func (b *backend) stopBreakers() {
	b.guardMu.Lock()
	defer b.guardMu.Unlock()
	for k, set := range b.breakers {
		set.cancel()
		delete(b.breakers, k)
	}
}

// admit asks the breaker for the picked target and, when it refuses (a
// half-open instance whose probe this node already sent), picks again.
func admit(b *breaker.Breakers, snap *discovery.Snapshot, now time.Time, skip func(string) bool, t *discovery.Target) bool {
	for range len(snap.Targets) + 1 {
		if _, err := b.Allow(t.Addr); err == nil {
			return true
		}
		next, ok := snap.Pick(now, skip)
		if !ok {
			return false
		}
		*t = next
	}
	return false
}

// allOpen builds the answer when every instance of the snapshot is kept
// out by its breaker: error_code (503) with Retry-After.
func allOpen(cp *compiled, snap *discovery.Snapshot, name string) (int, []byte, map[string][]string, bool) {
	addrs := make([]string, len(snap.Targets))
	for i := range snap.Targets {
		addrs[i] = snap.Targets[i].Addr
	}
	wait, all := cp.breakers.AllOpen(addrs)
	if !all {
		return 0, nil, nil, false
	}
	h := map[string][]string{
		"Content-Type": {"application/json"},
		"Retry-After":  {strconv.Itoa(breaker.RetryAfterSeconds(wait))},
	}
	return cp.breakerCode, messageJSON("circuit breaker open for every instance of service " + name), h, true
}

// try is one entry of kong.log.serialize()'s tries[].
type try struct {
	IP    string `json:"ip"`
	Port  int    `json:"port"`
	State string `json:"state"`
	Code  int    `json:"code"`
}

// recordOutcome feeds the breaker the outcome of every try of the request
// (Kong retries go to the same target; each try is a call). No tries: the
// request never reached a backend (answered in access), nothing to record.
func recordOutcome(b *breaker.Breakers, k kongAPI, addrOf func(ip string, port int) string) {
	s, err := k.Serialize()
	if err != nil {
		logThrottled("serialize", "service-registry: kong.log.serialize failed", "error", err)
		return
	}
	// The document is mostly headers: decode only the three top-level
	// values the breaker reads (a full json.Unmarshal costs ~10 µs).
	doc := []byte(s)
	var rawTries, rawResp, rawSource []byte
	if !topLevel(doc, func(key, v []byte) {
		switch string(key) { // no allocation: the compiler compares in place
		case "tries":
			rawTries = v
		case "response":
			rawResp = v
		case "source":
			rawSource = v
		}
	}) {
		logThrottled("serialize-json", "service-registry: kong.log.serialize: bad JSON")
		return
	}
	if rawTries == nil {
		return
	}
	var tries []try
	if err := json.Unmarshal(rawTries, &tries); err != nil || len(tries) == 0 {
		return
	}
	var status int
	if rawResp != nil {
		topLevel(rawResp, func(key, v []byte) {
			if string(key) == "status" {
				_ = json.Unmarshal(v, &status)
			}
		})
	}
	var source string
	_ = json.Unmarshal(rawSource, &source)
	st := b.Settings()
	for i, t := range tries {
		if t.IP == "" || t.Port == 0 {
			continue
		}
		code, failed := t.Code, t.State == "failed"
		if i == len(tries)-1 && code == 0 && !failed {
			// Kong sets state/code of a try only when it retries; the last
			// try's result is the response. Kong answering 5xx itself after
			// a try means the connection failed or timed out.
			code = status
			failed = source != "upstream" && code >= 500
		}
		b.Record(addrOf(t.IP, t.Port), st.Classify(code, failed))
	}
}

// breakerAddr is the address the picker knows for a try Kong made to
// ip:port: the registry's "host:port" when the instance was registered by
// host name (Kong resolved it; tries[] has the IP), else ip:port.
func (c *Config) breakerAddr(cp *compiled, ip string, port int) string {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if c.Registry != "redis" || cp.backend == nil {
		return addr
	}
	name := c.Service
	if name == "" {
		if p := c.resolved.Load(); p != nil {
			name = *p
		}
	}
	if name == "" {
		return addr
	}
	snap, ok := cp.backend.cache.Peek(name, time.Duration(c.CacheTTLMs)*time.Millisecond)
	if !ok {
		return addr
	}
	var named []*discovery.Target
	for i := range snap.Targets {
		t := &snap.Targets[i]
		if t.Port != port {
			continue
		}
		if t.Addr == addr || t.Host == ip {
			return t.Addr
		}
		if net.ParseIP(t.Host) == nil {
			named = append(named, t)
		}
	}
	for _, t := range named {
		if slices.Contains(hostIPs.lookup(t.Host), ip) {
			return t.Addr
		}
	}
	return addr
}

// hostIPs caches what registry host names resolve to, for breakerAddr.
var hostIPs = &dnsCache{m: map[string]dnsEntry{}, ttl: 30 * time.Second, timeout: time.Second}

type dnsCache struct {
	mu           sync.Mutex
	m            map[string]dnsEntry
	ttl, timeout time.Duration
}

type dnsEntry struct {
	ips     []string
	expires time.Time
}

// lookup resolves host, at most once per ttl (a failure is cached too, so
// a broken resolver costs the log phase one timeout per ttl, not per
// request). It runs in the log phase, after the response.
func (d *dnsCache) lookup(host string) []string {
	now := time.Now()
	d.mu.Lock()
	e, ok := d.m[host]
	d.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.ips
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		logThrottled("dns:"+host, "service-registry: cannot resolve instance host for the breaker", "host", host, "error", err)
	}
	d.mu.Lock()
	if len(d.m) > 4096 { // bounded: forget everything rather than grow
		d.m = map[string]dnsEntry{}
	}
	d.m[host] = dnsEntry{ips: ips, expires: now.Add(d.ttl)}
	d.mu.Unlock()
	return ips
}

// topLevel calls fn with each key and raw value of the JSON object doc,
// without decoding nested values; false when doc is not a well-formed
// object at this level. Keys are compared as written (Kong's cjson does
// not escape ASCII key names).
func topLevel(doc []byte, fn func(key, value []byte)) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		return true
	}
	for i < len(doc) {
		if doc[i] != '"' {
			return false
		}
		end := skipString(doc, i)
		if end < 0 {
			return false
		}
		key := doc[i+1 : end-1]
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return false
		}
		start := skipSpace(doc, i+1)
		end = skipValue(doc, start)
		if end < 0 {
			return false
		}
		fn(key, doc[start:end])
		i = skipSpace(doc, end)
		if i >= len(doc) {
			return false
		}
		switch doc[i] {
		case ',':
			i = skipSpace(doc, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"'),
// or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i],
// or -1. Nested objects and arrays are skipped by depth, strings by their
// escapes; scalars end at the next delimiter (json.Unmarshal checks them).
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := skipString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
