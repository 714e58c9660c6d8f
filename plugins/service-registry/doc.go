// Command service-registry is the Kong plugin: a go-pdk embedded plugin
// server that Kong starts (pluginserver_service_registry_start_cmd) and asks
// for its schema with -dump (pluginserver_service_registry_query_cmd).
//
// Access phase, in order: rate limit → breaker admission → pick an instance
// from the registry snapshot (registry = redis) → kong.service.set_target.
// With registry = kong it leaves the target to Kong. The log phase feeds the
// circuit breaker and makes no PDK call while the breaker is off. With
// fast_path (the catch-all route, issue 16) it first matches the request in
// the route table (internal/routetable) and runs those steps with the
// matched route's own config (fastpath.go), or answers Kong's no-route 404
// (noroute.go). With registry_routes (a global instance, adminsvc's plugin
// scope global) it asks Kong which service the request matched and runs
// those steps with that registered route's own config (registryroutes.go);
// other Kong services pass untouched.
//
// One concept per file: handler.go (the access steps in order, the log
// phase), fastpath.go and noroute.go (the fast path), registryroutes.go
// (one global instance for every registered route), servicename.go (the one resolver of the registry service),
// guards.go (wiring the guards into compiled), rateguard.go (rate limit),
// breakers.go (breaker sets shared across config versions), admission.go
// (breaker admission and the all-open answer), outcome.go (outcomes from
// kong.log.serialize), dnscache.go, jsonscan.go, backends.go (Redis
// clients and caches per settings), globals.go (every process-wide
// variable, each with its reason), logging.go, kongapi.go (the PDK calls),
// metrics.go (request-path counters: atomics) and metricsexport.go (the
// optional Prometheus listener, -metrics-listen / SR_PLUGIN_METRICS_LISTEN).
//
// The guards: the rate limit is internal/ratelimit (GCRA, one
// Redis script per admitted request; requests_per_min N with burst B admits
// B+1 at once, then one every minute/N), keyed by Kong's __plugin_id and
// the limit_by identity (limit by service/route without the id in the
// config asks kong.router for the matched one, as Kong's rate-limiting
// does, sharing get_service with the registry service name within a
// request); its headers go out in one set_headers call, a
// denial in one exit. The circuit breaker is internal/breaker, one set per
// (registry service, settings) shared by all config versions: the picker
// skips open instances, the log phase reads the tries of
// kong.log.serialize and records each under the registry address of the
// instance (an instance registered by host name is tried by Kong under its
// resolved IP: the plugin maps it back, resolving the name at most every
// 30 s in the log phase). With registry = kong the breaker only records
// under ip:port (Kong's balancer picks, the plugin cannot steer it).
//
// Config fields, defaults and validators are declared once (struct tags in
// config.go) and drive the -dump schema, Go-side defaults and validation.
// Long-lived state (Redis clients, discovery caches) lives in process-wide
// registries keyed by the Redis settings, never on a Config: Kong creates a
// new Config instance per config version.
//
// It must not panic out of a handler (a panic kills every request on the
// node), make Redis round trips per request for discovery, use PDK calls
// beyond the budget of DESIGN.md decision 7, or log the Redis password.
package main
