// Command service-registry is the Kong plugin: a go-pdk embedded plugin
// server that Kong starts (pluginserver_service_registry_start_cmd) and asks
// for its schema with -dump (pluginserver_service_registry_query_cmd).
//
// Access phase, in order: rate limit → breaker admission → pick an instance
// from the registry snapshot (registry = redis) → kong.service.set_target.
// With registry = kong it leaves the target to Kong. The log phase feeds the
// circuit breaker and makes no PDK call while the breaker is off.
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
