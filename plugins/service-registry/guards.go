package main

import "github.com/kong-service-registry/service-registry/internal/ratelimit"

// The two guards of the access phase, as typed fields of compiled:
//
//	rate limit (rateGuard, rateguard.go) → pick with breaker admission
//	(breakerGuard, admission.go) → set_target; log phase: the breaker
//	records the outcome (outcome.go).
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

// compileGuards builds the guards of a valid config (cp.backend is set
// whenever one of them is enabled).
func (c *Config) compileGuards(cp *compiled) error {
	if c.RateLimit.Enabled {
		g, err := c.newRateGuard(cp.backend)
		if err != nil {
			return err
		}
		cp.rate = g
		// A global plugin picking from the registry resolves the matched
		// service for the registry name too (servicename.go).
		cp.shareRouter = (g.by == ratelimit.ByService || g.by == ratelimit.ByRoute) && g.value == "" &&
			c.Registry == "redis" && c.Service == ""
	}
	if c.CircuitBreaker.Enabled {
		set, err := c.acquireBreakers(cp.backend)
		if err != nil {
			return err
		}
		cp.breaker = &breakerGuard{set: set, code: c.CircuitBreaker.ErrorCode}
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
