package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// LimitBy is what a limit counts requests by (config `rate_limit.limit_by`).
type LimitBy string

const (
	ByService  LimitBy = "service"
	ByRoute    LimitBy = "route"
	ByIP       LimitBy = "ip"
	ByConsumer LimitBy = "consumer"
	ByHeader   LimitBy = "header"
)

// ParseLimitBy accepts the config values; empty means service.
func ParseLimitBy(s string) (LimitBy, error) {
	switch LimitBy(s) {
	case "":
		return ByService, nil
	case ByService, ByRoute, ByIP, ByConsumer, ByHeader:
		return LimitBy(s), nil
	}
	return "", fmt.Errorf("ratelimit: unknown limit_by %q", s)
}

// Key is the identity one request is counted under. scope separates plugin
// instances (use the Kong plugin id, or service name when limiting a whole
// service); value is the identity for by:
//
//	service:  the config's service_id or registry service name (no PDK
//	          call); a global plugin has neither: kong.router.get_service().id
//	route:    the config's route_id (Kong adds it to a route-scoped plugin's
//	          config; no PDK call), else kong.router.get_route().id
//	ip:       kong.client.get_forwarded_ip()
//	consumer: kong.client.get_consumer().id (credential id when no consumer)
//	header:   kong.request.get_header(header_name)
//
// Like Kong's rate-limiting plugin, a caller whose value is empty counts the
// request by the client IP instead (ByIP and the address).
func Key(scope string, by LimitBy, value string) string {
	return escape(scope) + ":" + string(by) + ":" + escape(value)
}

// keyEscaper percent-encodes the bytes that mean something in a key: '%'
// (the escape itself), ':' (the part separator), '{' '}' (the Cluster hash
// tag) and '#' (the mark of a hashed long value, so no short value can be
// spelled like one). Built once: the key is built on every request, before
// the deny-cache lookup, and every IPv6 client needs escaping.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", "{", "%7B", "}", "%7D", "#", "%23")

// escape keeps separators and hash-tag braces out of key parts, and bounds
// the length of attacker-chosen values (headers) by hashing long ones.
func escape(s string) string {
	if len(s) > 128 {
		sum := sha256.Sum256([]byte(s))
		return "#" + hex.EncodeToString(sum[:16])
	}
	if !strings.ContainsAny(s, "%:{}#") {
		return s
	}
	return keyEscaper.Replace(s)
}

// redisKey is `<prefix>:v1:{rl:<key>}:<period>`: the hash tag puts every
// limit of one request in one Cluster slot, so one script call sees them all.
func redisKey(prefix, key string, l Limit) string {
	return prefix + ":v1:{rl:" + key + "}:" + l.keySuffix()
}
