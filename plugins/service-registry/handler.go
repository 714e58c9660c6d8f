package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/Kong/go-pdk"

	"github.com/kong-service-registry/service-registry/internal/discovery"
)

// kongAPI is the part of the PDK the handlers use. Every method is one PDK
// call (one socket round trip in a real Kong), so tests count them here.
type kongAPI interface {
	SetTarget(host string, port int) error
	// Exit ends the request with a JSON body.
	Exit(status int, body []byte)
	// ExitHeaders ends the request with a body and these headers (one call).
	ExitHeaders(status int, body []byte, headers map[string][]string)
	// SetHeaders adds response headers (kong.response.set_headers).
	SetHeaders(headers map[string][]string) error
	// ForwardedIP is kong.client.get_forwarded_ip.
	ForwardedIP() (string, error)
	// ConsumerID is kong.client.get_consumer().id ("" when none).
	ConsumerID() (string, error)
	// RequestHeader is kong.request.get_header.
	RequestHeader(name string) (string, error)
	// Serialize is kong.log.serialize (log phase): a JSON document.
	Serialize() (string, error)
	// RouterService returns the id and name of the Kong service matched
	// (kong.router.get_service).
	RouterService() (id, name string, err error)
	// RouterRoute returns the ids of the Kong route matched and of its
	// service (kong.router.get_route).
	RouterRoute() (id, serviceID string, err error)
}

type pdkAPI struct{ k *pdk.PDK }

var jsonHeaders = map[string][]string{"Content-Type": {"application/json"}}

func (p pdkAPI) SetTarget(host string, port int) error { return p.k.Service.SetTarget(host, port) }
func (p pdkAPI) Exit(status int, body []byte)          { p.k.Response.Exit(status, body, jsonHeaders) }
func (p pdkAPI) ExitHeaders(status int, body []byte, h map[string][]string) {
	p.k.Response.Exit(status, body, h)
}
func (p pdkAPI) SetHeaders(h map[string][]string) error    { return p.k.Response.SetHeaders(h) }
func (p pdkAPI) ForwardedIP() (string, error)              { return p.k.Client.GetForwardedIp() }
func (p pdkAPI) RequestHeader(name string) (string, error) { return p.k.Request.GetHeader(name) }
func (p pdkAPI) Serialize() (string, error)                { return p.k.Log.Serialize() }
func (p pdkAPI) ConsumerID() (string, error) {
	c, err := p.k.Client.GetConsumer()
	return c.Id, err
}
func (p pdkAPI) RouterService() (string, string, error) {
	s, err := p.k.Router.GetService()
	return s.Id, s.Name, err
}
func (p pdkAPI) RouterRoute() (string, string, error) {
	r, err := p.k.Router.GetRoute()
	return r.Id, r.Service.Id, err
}

// requestRouter spares a plugin without service_id a second router call in
// one request: the rate limit asks for the matched service or route (its
// identity), the registry pick for the service's name. get_service is
// asked at most once (Kong's answer cannot change within a request), and
// not at all when get_route already gave the service id and its name is
// in serviceNames (learned once per Kong service, like serviceName does).
type requestRouter struct {
	kongAPI
	asked    bool
	id, name string
	err      error
	routeSvc string // service id from get_route
}

func (r *requestRouter) RouterService() (string, string, error) {
	if !r.asked && r.routeSvc != "" {
		if v, ok := serviceNames.Load(r.routeSvc); ok {
			r.asked, r.id, r.name = true, r.routeSvc, v.(string)
		}
	}
	if !r.asked {
		r.asked = true
		r.id, r.name, r.err = r.kongAPI.RouterService()
		if r.err == nil {
			rememberServiceName(r.id, r.name)
		}
	}
	return r.id, r.name, r.err
}

func (r *requestRouter) RouterRoute() (string, string, error) {
	id, svc, err := r.kongAPI.RouterRoute()
	if err == nil {
		r.routeSvc = svc
	}
	return id, svc, err
}

var internalError = messageJSON("An unexpected error occurred")

// Access runs rate limit → breaker admit → pick → set_target.
func (c *Config) Access(kong *pdk.PDK) { c.access(pdkAPI{kong}) }

// Log records the outcome for the circuit breaker (nothing while the
// breaker is not wired: 0 PDK calls).
func (c *Config) Log(kong *pdk.PDK) { c.log(pdkAPI{kong}) }

func (c *Config) access(k kongAPI) {
	defer recoverHandler(k, "access")
	cp := c.compile()
	if cp.err != nil {
		k.Exit(500, cp.message)
		return
	}
	if cp.shareRouter {
		k = &requestRouter{kongAPI: k}
	}
	// 1. Rate limit (internal/ratelimit plugs in here; it answers the
	//    client itself when the request is over the limit).
	if cp.rateLimit != nil && !cp.rateLimit(k) {
		return
	}
	// 2. Breaker admission: the picker skips instances whose breaker is open.
	skip := cp.skip
	// 3. Pick. registry = kong: Kong's upstream decides, no PDK call here
	//    (the breaker can then only record outcomes, see guards.go).
	if c.Registry != "redis" || cp.backend == nil {
		return
	}
	name, ok := c.serviceName(k)
	if !ok {
		return
	}
	ttl := time.Duration(c.CacheTTLMs) * time.Millisecond
	snap, ok := cp.backend.cache.Peek(name, ttl)
	if !ok {
		var err error
		if snap, err = c.firstLoad(cp, name, ttl); err != nil {
			logThrottled("first-load:"+name, "service-registry: no snapshot for service (answering 503)", "service", name, "error", err)
			k.Exit(503, noInstance(name))
			return
		}
	}
	if snap.Maintenance.Enabled {
		msg := snap.Maintenance.Message
		if msg == "" {
			msg = "service " + name + " is under maintenance"
		}
		k.Exit(503, messageJSON(msg))
		return
	}
	var now time.Time // zero: no lease to check, no clock read
	if snap.HasLeases() {
		now = cp.backend.cache.Now()
	}
	t, ok := snap.Pick(now, skip)
	if ok && cp.breakers != nil {
		ok = admit(cp.breakers, snap, now, skip, &t)
	}
	if !ok {
		if cp.breakers != nil {
			if status, body, h, all := allOpen(cp, snap, name); all {
				k.ExitHeaders(status, body, h)
				return
			}
		}
		k.Exit(503, noInstance(name))
		return
	}
	// 4. Target.
	if err := k.SetTarget(t.Host, t.Port); err != nil {
		logger().Error("service-registry: set_target failed", "service", name, "target", t.Addr, "error", err)
	}
}

// logged remembers when a throttled message was last written.
var logged sync.Map // key -> time.Time

// logThrottled writes msg at most once per 10 s per key: a broken Redis or
// an unknown service must not write one line per request.
func logThrottled(key, msg string, args ...any) {
	now := time.Now()
	if last, ok := logged.Load(key); ok && now.Sub(last.(time.Time)) < 10*time.Second {
		return
	}
	logged.Store(key, now)
	logger().Warn(msg, args...)
}

func noInstance(name string) []byte { return messageJSON("no healthy instance for service " + name) }

// firstLoad waits for the very first snapshot of a service, bounded by a
// few Redis timeouts.
func (c *Config) firstLoad(cp *compiled, name string, ttl time.Duration) (*discovery.Snapshot, error) {
	wait := 5 * cp.backend.timeout
	if wait < 100*time.Millisecond {
		wait = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return cp.backend.cache.Get(ctx, name, ttl)
}

func (c *Config) log(k kongAPI) {
	defer recoverHandler(k, "log")
	cp := c.compile()
	if cp.err != nil || cp.record == nil {
		return
	}
	cp.record(k)
}

// serviceNames caches Kong service id → name for every instance of the
// process, so resolving the default registry service costs one
// kong.router.get_service per Kong service, not per request.
var serviceNames sync.Map // string -> string

// rememberServiceName records a Kong service's name in serviceNames (a
// rename replaces it); loaded first because a sync.Map store per request
// would allocate.
func rememberServiceName(id, name string) {
	if id == "" || name == "" {
		return
	}
	if v, known := serviceNames.Load(id); !known || v.(string) != name {
		serviceNames.Store(id, name)
	}
}

// serviceName is the registry service of this request: config `service`,
// else the Kong service's name.
func (c *Config) serviceName(k kongAPI) (string, bool) {
	if c.Service != "" {
		return c.Service, true
	}
	if p := c.resolved.Load(); p != nil {
		return *p, true
	}
	if c.serviceID != "" {
		if v, ok := serviceNames.Load(c.serviceID); ok {
			name := v.(string)
			c.resolved.Store(&name)
			return name, true
		}
	}
	id, name, err := k.RouterService() // the rate limit may have asked already: see requestRouter
	if err != nil || name == "" {
		logger().Error("service-registry: cannot resolve the registry service (set config.service)", "error", err)
		k.Exit(500, messageJSON("service-registry: invalid config: service: required when the Kong service has no name"))
		return "", false
	}
	// A global plugin (no service_id) serves many Kong services: resolve
	// per request there; scoped to one service, remember it.
	if c.serviceID != "" && (id == "" || id == c.serviceID) {
		serviceNames.Store(c.serviceID, name)
		c.resolved.Store(&name)
	}
	return name, true
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
