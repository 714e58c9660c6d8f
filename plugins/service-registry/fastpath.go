package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kong-service-registry/service-registry/internal/routetable"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// The fast path (issue 16): on the catch-all route (fast_path: true) the
// plugin serves every registered route Kong's router does not have yet,
// from the route table (internal/routetable), with the config the route's
// dedicated service carries (translator.ForRoute): same rate-limit counter,
// same breakers, same snapshot. Kong's router hands the catch-all only
// what no dedicated route matched, so the dedicated route takes over as
// soon as Kong has it.
//
// PDK calls per fast-path request: get_header(host), get_path, then what
// the dedicated route's plugin does (set_target, set_header(host) for
// preserve_host, set_headers for rate-limit headers), plus set_path when
// the backend has a path, set_scheme for an https backend, and in the log
// phase ctx.shared.get once a route with a breaker was served (then
// log.serialize for such routes).

// fastPathKey is the kong.ctx.shared key through which the access phase
// tells the log phase which route it served: "<request host>\x00<path>".
const fastPathKey = "service-registry.fast-path"

// fastBreakers is set once a route with a circuit breaker was built for the
// fast path or registry_routes (buildRoute): before that their log phase
// has nothing to record and makes no PDK call.
var fastBreakers atomic.Bool

// routeServing is what the fast path builds once per route record.
type routeServing struct {
	cfg       *Config // the route's own config, as on its dedicated service
	serviceID string  // the dedicated Kong service's id
	basePath  string  // the Kong service's path ("" when none)
	https     bool
	headers   map[string][]string // options.headers (response-transformer add)
	err       error
}

// fastPath serves a request on the catch-all route.
func (c *Config) fastPath(k kongAPI, cp *compiled) (string, outcome) {
	table := c.routes(cp)
	if err := waitRoutes(cp.backend, table); err != nil {
		// Without the table the route is unknown here: Kong without the
		// catch-all would answer 404 too.
		logThrottled("fast-path-load", "service-registry: fast path: routes not loaded, answering Kong's 404", "error", err)
		return "", noRoute(k)
	}
	host, _ := k.RequestHeader("host")
	path, err := k.RequestPath()
	if err != nil {
		logThrottled("fast-path-path", "service-registry: fast path: kong.request.get_path failed", "error", err)
		return "", noRoute(k)
	}
	reqHost := routetable.RequestHost(host)
	e := table.Match(reqHost, path)
	if e == nil {
		// A registration's change may still be on its way into the table
		// (POST /register answers once the route is in the index): have
		// the table checked at the registry's generation, at most
		// timeout_ms (one GET while the registry is unchanged), then decide.
		table.Settle(cp.backend.timeout)
		if e = table.Match(reqHost, path); e == nil {
			return "", noRoute(k)
		}
	}
	rs, _ := e.Value(cp.buildRoute).(*routeServing)
	if rs == nil {
		rs = &routeServing{err: fmt.Errorf("no route config built")}
	}
	if rs.err != nil {
		// The sync cannot make this route's Kong entities either (the
		// translator refuses it): Kong would never route it.
		logThrottled("fast-path-route:"+e.Service, "service-registry: fast path: route not servable", "service", e.Service, "error", rs.err.Error())
		return e.Service, noRoute(k)
	}
	fk := &fastKong{kongAPI: k, host: host, extra: rs.headers}
	name, o := rs.cfg.serve(fk)
	if o == outRouted {
		rs.finish(fk, path, reqHost)
	}
	return name, o
}

// routes is the route table of cp's backend (the fast path's and
// registry_routes'), checked against the registry every cache_ttl_ms.
func (c *Config) routes(cp *compiled) *routetable.Table {
	return cp.backend.routeTable(time.Duration(c.CacheTTLMs) * time.Millisecond)
}

// waitRoutes waits for the table's first load (once per process), no
// longer than the backend's background timeout.
func waitRoutes(b *backend, t *routetable.Table) error {
	if t.Ready() {
		return nil // every request but the first ones: no context to make
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.loadTimeout)
	defer cancel()
	return t.Wait(ctx)
}

// finish applies what the dedicated route's Kong service would have:
// its path joined as Kong's router joins it, its scheme, the route's
// response headers, and tells the log phase about a breaker.
func (rs *routeServing) finish(fk *fastKong, path, reqHost string) {
	if rs.basePath != "" {
		if err := fk.SetPath(joinUpstreamPath(rs.basePath, path)); err != nil {
			logThrottled("fast-path-set-path", "service-registry: fast path: set_path failed", "error", err)
		}
	}
	// The catch-all's Kong service is http: only https needs a change.
	if rs.https {
		if err := fk.SetScheme("https"); err != nil {
			logThrottled("fast-path-set-scheme", "service-registry: fast path: set_scheme failed", "error", err)
		}
	}
	fk.flushHeaders()
	if rs.cfg.compile().breaker != nil {
		if err := fk.SetShared(fastPathKey, reqHost+"\x00"+path); err != nil {
			logThrottled("fast-path-shared", "service-registry: fast path: ctx.shared.set failed", "error", err)
		}
	}
}

// joinUpstreamPath is Kong's upstream path for a route with strip_path
// false under path_handling v0 (kong/router/utils.lua get_upstream_uri_v0,
// the same in 3.4 and 3.9): base ending in '/' takes the request path
// without its leading '/'; otherwise "/" maps to base itself.
func joinUpstreamPath(base, path string) string {
	if strings.HasSuffix(base, "/") {
		return base + strings.TrimPrefix(path, "/")
	}
	if path == "/" {
		return base
	}
	return base + path
}

// fastPathLog records the breaker outcome of a fast-path request with the
// served route's config, as the dedicated route's log phase would.
func (c *Config) fastPathLog(k kongAPI, cp *compiled) {
	if !fastBreakers.Load() || cp.backend == nil {
		return
	}
	v, err := k.GetShared(fastPathKey)
	if err != nil || v == "" {
		return
	}
	host, path, _ := strings.Cut(v, "\x00")
	e := c.routes(cp).Match(host, path)
	if e == nil {
		return // deregistered meanwhile: nothing left to protect
	}
	if rs, _ := e.Value(cp.buildRoute).(*routeServing); rs != nil && rs.err == nil {
		rs.cfg.log(k)
	}
}

// buildRoute makes the route's config from its record exactly as the sync
// writes it on the dedicated service (with this config's Redis), plus the
// ids Kong would send with it, so the rate limit counts in the same key.
func (c *Config) buildRoute(e *routetable.Entry) any {
	rs := &routeServing{}
	sv, err := translator.ForRoute(e.Route, e.Service, translator.Options{Redis: redisMap(c.Redis)})
	if err != nil {
		rs.err = fmt.Errorf("translating route: %w", err)
		return rs
	}
	cfg := maps.Clone(sv.Config)
	cfg["__plugin_id"] = sv.PluginID
	cfg["service_id"] = sv.ServiceID
	raw, err := json.Marshal(cfg)
	if err != nil {
		rs.err = fmt.Errorf("encoding route config: %w", err)
		return rs
	}
	rc := &Config{}
	_ = rc.UnmarshalJSON(raw) // never fails: problems come back from compile
	// rc shares the catch-all's backend (same Redis settings) without a
	// reference of its own: rc is reachable from that backend (its route
	// table's entries), so a reference released when rc is collected
	// would never be released, and a backend left behind by a change of
	// the catch-all's Redis settings would never be closed.
	if rc.compiled == nil {
		rc.compiled = &compiled{}
	}
	rc.compiled.backend = c.compile().backend
	if cp := rc.compile(); cp.err != nil {
		rs.err = cp.err
		return rs
	}
	rs.cfg, rs.serviceID, rs.basePath, rs.https = rc, sv.ServiceID, sv.Path, sv.Protocol == "https"
	if rc.compile().breaker != nil {
		fastBreakers.Store(true)
	}
	if len(sv.Headers) > 0 {
		rs.headers = make(map[string][]string, len(sv.Headers))
		for name, v := range sv.Headers {
			rs.headers[name] = []string{v}
		}
	}
	return rs
}

// redisMap is the redis record as the sync writes it in a plugin config.
func redisMap(r RedisConfig) map[string]any {
	raw, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// fastKong is the PDK for one fast-path request: the Host header read for
// matching is not asked again (preserve_host), and the route's response
// headers ride on the first set_headers or exit the request makes.
type fastKong struct {
	kongAPI
	host  string
	extra map[string][]string // not sent yet
}

func (f *fastKong) RequestHeader(name string) (string, error) {
	if strings.EqualFold(name, "host") {
		return f.host, nil
	}
	return f.kongAPI.RequestHeader(name)
}

// merged adds the pending route headers to h: a header already in h wins,
// as response-transformer's add leaves a present header alone.
func (f *fastKong) merged(h map[string][]string) map[string][]string {
	if f.extra == nil {
		return h
	}
	out := make(map[string][]string, len(h)+len(f.extra))
	for name, v := range h {
		out[name] = v
	}
	for name, v := range f.extra {
		if !hasHeader(h, name) {
			out[name] = v
		}
	}
	f.extra = nil
	return out
}

func hasHeader(h map[string][]string, name string) bool {
	for n := range h {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func (f *fastKong) SetHeaders(h map[string][]string) error {
	return f.kongAPI.SetHeaders(f.merged(h))
}

func (f *fastKong) Exit(status int, body []byte) {
	f.kongAPI.ExitHeaders(status, body, f.merged(jsonHeaders))
}

func (f *fastKong) ExitHeaders(status int, body []byte, h map[string][]string) {
	f.kongAPI.ExitHeaders(status, body, f.merged(h))
}

// flushHeaders sends route headers no set_headers carried.
func (f *fastKong) flushHeaders() {
	if f.extra == nil {
		return
	}
	if err := f.kongAPI.SetHeaders(f.merged(nil)); err != nil {
		logThrottled("fast-path-headers", "service-registry: fast path: set_headers failed", "error", err)
	}
}
