// Package routeopts parses, validates and canonicalises the go-proxy
// registration "options" object (CONTRACT §1): timeout, websocket, headers,
// rate_limit, circuit_breaker, retry, health_check_path and
// health_check_interval. Unknown option names are kept so they survive a
// round trip through the registry.
//
// It is pure: no I/O, no logging, no knowledge of Kong. Mapping options to
// Kong entities belongs to internal/translator.
package routeopts
