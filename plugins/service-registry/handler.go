package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/Kong/go-pdk"

	"github.com/kong-service-registry/service-registry/internal/discovery"
)

var internalError = messageJSON("An unexpected error occurred")

// Access runs, in order: config check → rate limit → registry service →
// snapshot → pick (breaker admission) → set_target.
func (c *Config) Access(kong *pdk.PDK) { c.access(pdkAPI{kong}) }

// Log records the outcome for the circuit breaker (nothing while the
// breaker is not wired: 0 PDK calls).
func (c *Config) Log(kong *pdk.PDK) { c.log(pdkAPI{kong}) }

func (c *Config) access(k kongAPI) {
	defer recoverHandler(k, "access")
	name, o := c.serve(k)
	c.countRequest(name, o)
}

// serve runs the access steps in order and says how the request ended and
// for which registry service ("" when it ended before step 3).
func (c *Config) serve(k kongAPI) (string, outcome) {
	// 1. The config: an invalid one answers 500 on every request.
	cp := c.compile()
	if cp.err != nil {
		k.Exit(500, cp.message)
		return "", outError
	}
	if c.FastPath {
		return c.fastPath(k, cp)
	}
	if c.RegistryRoutes {
		return c.registryRoute(k, cp)
	}
	if cp.shareRouter {
		k = &requestRouter{kongAPI: k}
	}
	// 2. Rate limit: it answers the client itself when over the limit.
	if cp.rate != nil && !cp.rate.check(k) {
		return "", outRateLimited
	}
	// registry = kong: Kong's upstream picks, no PDK call from here on (the
	// breaker can then only record outcomes, see guards.go).
	if c.Registry != "redis" || cp.backend == nil {
		return "", outPassed
	}
	// 3. The registry service (servicename.go).
	name, ok := c.serviceName(k)
	if !ok {
		return "", outError
	}
	// 4. Its snapshot; maintenance answers 503.
	snap, o := c.snapshot(cp, k, name)
	if snap == nil {
		return name, o
	}
	// 5. Pick an instance the breaker admits.
	t, o := cp.pick(k, snap, name)
	if o != outRouted {
		return name, o
	}
	// 6. Target, and the Host the route asks for.
	if err := k.SetTarget(t.Host, t.Port); err != nil {
		logger().Error("service-registry: set_target failed", "service", name, "target", t.Addr, "error", err)
		return name, outError
	}
	if c.PreserveHost {
		preserveHost(k)
	}
	return name, outRouted
}

// preserveHost gives the upstream request the client's Host back.
// set_target makes the target host the upstream Host (pdk/service.lua:
// ngx.var.upstream_host = host), overwriting what Kong's router set for a
// route with preserve_host; without this, such a route lost it. It costs
// two PDK calls, only where preserve_host is configured: the route is not
// asked for (kong.router.get_route would be a third call on every
// request); the config carries the route's preserve_host instead.
func preserveHost(k kongAPI) {
	host, err := k.RequestHeader("host")
	if err != nil || host == "" {
		// No Host (HTTP/1.0): Kong's router preserves nothing either.
		return
	}
	if err := k.SetUpstreamHost(host); err != nil {
		logThrottled("preserve-host", "service-registry: setting the upstream Host failed", "error", err)
	}
}

// snapshot is the service's cached snapshot (the first one is waited for);
// nil when it answered the client: no snapshot or maintenance (503).
func (c *Config) snapshot(cp *compiled, k kongAPI, name string) (*discovery.Snapshot, outcome) {
	ttl := time.Duration(c.CacheTTLMs) * time.Millisecond
	snap, ok := cp.backend.cache.Peek(name, ttl)
	if !ok {
		var err error
		if snap, err = firstLoad(cp.backend, name, ttl); err != nil {
			logThrottled("first-load:"+name, "service-registry: no snapshot for service (answering 503)", "service", name, "error", err)
			k.Exit(503, noInstance(name))
			return nil, outNoInstance
		}
	}
	if snap.Maintenance.Enabled {
		msg := snap.Maintenance.Message
		if msg == "" {
			msg = "service " + name + " is under maintenance"
		}
		k.Exit(503, messageJSON(msg))
		return nil, outMaintenance
	}
	return snap, outRouted
}

// pick chooses the next instance in weighted order, passing over expired
// leases and instances the breaker keeps out; unless outRouted, it
// answered the client: 503, with Retry-After when every instance is open.
func (cp *compiled) pick(k kongAPI, snap *discovery.Snapshot, name string) (discovery.Target, outcome) {
	var now time.Time // zero: no lease to check, no clock read
	if snap.HasLeases() {
		now = cp.backend.cache.Now()
	}
	if cp.breaker == nil {
		t, ok := snap.Pick(now, nil)
		if !ok {
			k.Exit(503, noInstance(name))
			return t, outNoInstance
		}
		return t, outRouted
	}
	t, ok := snap.Pick(now, cp.breaker.skip)
	if ok && cp.breaker.admit(snap, now, cp.breaker.skip, &t) {
		return t, outRouted
	}
	if status, body, h, all := cp.breaker.allOpen(snap, name); all {
		k.ExitHeaders(status, body, h)
		return t, outBreakerOpen
	}
	k.Exit(503, noInstance(name))
	return t, outNoInstance
}

func noInstance(name string) []byte { return messageJSON("no healthy instance for service " + name) }

// firstLoad waits for the very first snapshot of a service, at most
// timeout_ms: no request waits longer on Redis. A load that takes longer
// goes on in the background (the next request finds its snapshot), and
// while Redis is known down the cache answers at once (discovery.Cache.Get).
func firstLoad(b *backend, name string, ttl time.Duration) (*discovery.Snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	return b.cache.Get(ctx, name, ttl)
}

func (c *Config) log(k kongAPI) {
	defer recoverHandler(k, "log")
	cp := c.compile()
	if cp.err == nil && c.FastPath {
		c.fastPathLog(k, cp)
		return
	}
	if cp.err == nil && c.RegistryRoutes {
		c.registryRoutesLog(k, cp)
		return
	}
	if cp.err != nil || cp.breaker == nil {
		return
	}
	c.recordOutcome(cp, k)
}

// recoverHandler keeps a panic from killing the plugin server (and with it
// every request on this Kong node): log it, answer 500 in the access phase.
func recoverHandler(k kongAPI, phase string) {
	r := recover()
	if r == nil {
		return
	}
	logger().Error("service-registry: panic in handler", "phase", phase, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if phase != "access" {
		return
	}
	defer func() { _ = recover() }()
	k.Exit(500, internalError)
}
