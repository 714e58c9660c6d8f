package main

import "github.com/kong-service-registry/service-registry/internal/translator"

// registry_routes: one global plugin instance serves every Kong service
// adminsvc made for a registered route, with that route's own options read
// from the route table (the same translation the fast path uses,
// translator.ForRoute), instead of one plugin entity per service.
//
// Why: in Kong's DB mode every plugin write makes each worker rebuild its
// plugins iterator over all plugin entities, and with 10 000 of them that
// stops the worker for 0.2-0.65 s (BENCHMARKS.md, "What stalls Kong's
// worker"); with one global entity a registration writes no plugin at all.
//
// PDK calls per request: kong.router.get_service (which Kong service, the
// one call more than a per-service instance, whose config names it), then
// what that service's own instance would make. Other Kong services (the
// operator's) pass untouched after that one call (and the two plugin-server
// events every global plugin costs). Log phase: nothing until a route with
// a circuit breaker was built on this node (fastBreakers), then
// kong.log.serialize, which names the service, on every request Kong
// proxies, the operator's included: one call, within DESIGN.md's log
// budget, where per-service instances pay it on breaker routes only.

// registryRoute serves a request as the plugin on its Kong service would.
func (c *Config) registryRoute(k kongAPI, cp *compiled) (string, outcome) {
	id, name, err := k.RouterService()
	if err != nil {
		logThrottled("registry-routes-service", "service-registry: registry_routes: kong.router.get_service failed; Kong's upstream serves the request", "error", err)
		return "", outPassed
	}
	if id == "" || name == "" {
		return "", outPassed // no Kong service: not ours
	}
	// Ours is a service adminsvc made: its id derives from its name. That
	// takes a hash, so a service the table has is checked against the id
	// its route was built with instead (below); the hash is for the others.
	ours := func() bool { return id == translator.ID("service", name) }
	table := c.routes(cp)
	if !table.Ready() && !ours() {
		return "", outPassed // an operator's service: no wait for the table
	}
	if err := waitRoutes(cp.backend, table); err != nil {
		// Without the table the route's options are unknown: fail static,
		// Kong's own upstream (adminsvc keeps its targets) serves it.
		logThrottled("registry-routes-load", "service-registry: registry_routes: routes not loaded; Kong's upstream serves the request", "error", err)
		return "", outPassed
	}
	e := table.Service(name)
	if e == nil {
		if !ours() {
			return "", outPassed // an operator's service
		}
		// Ours, and not in the table: deregistered (Kong's router keeps the
		// route until the sync deletes it) or registered a moment ago and
		// still on its way into the table: check at the registry's
		// generation, as the fast path does, then answer what Kong will
		// once the route is gone.
		table.Settle(cp.backend.timeout)
		if e = table.Service(name); e == nil {
			return name, noRoute(k)
		}
	}
	rs, _ := e.Value(cp.buildRoute).(*routeServing)
	if rs == nil || rs.err != nil || id != rs.serviceID {
		if rs != nil && rs.err != nil {
			// The sync keeps this route's Kong entities as they are
			// (translator refusal): so does the request, unguarded.
			logThrottled("registry-routes-route:"+name, "service-registry: registry_routes: route not servable; Kong's upstream serves it", "service", name, "error", rs.err.Error())
		}
		return "", outPassed
	}
	return rs.cfg.serve(k)
}

// registryRoutesLog records the breaker outcome with the served route's
// config, as that service's own instance would.
func (c *Config) registryRoutesLog(k kongAPI, cp *compiled) {
	if !fastBreakers.Load() || cp.backend == nil {
		return
	}
	doc, ok := readLogDoc(k)
	if !ok || doc.tries == nil || doc.service == nil {
		return
	}
	id, name := serializedService(doc.service)
	if name == "" {
		return
	}
	e := c.routes(cp).Service(name)
	if e == nil {
		return // deregistered meanwhile: nothing left to protect
	}
	rs, _ := e.Value(cp.buildRoute).(*routeServing)
	if rs == nil || rs.err != nil || rs.serviceID != id {
		return
	}
	if rcp := rs.cfg.compile(); rcp.err == nil && rcp.breaker != nil {
		rs.cfg.record(rcp, doc)
	}
}
