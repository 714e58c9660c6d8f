package routeopts

import (
	"math"
	"strings"
	"time"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
)

// timeout is options.timeout: a duration Kong can store (whole
// milliseconds between 1 and 2^31-2).
func timeout(field string, v any) (time.Duration, error) {
	d, err := duration(field, v)
	if err != nil {
		return 0, err
	}
	if d > maxTimeout {
		return 0, fieldErr(field, "must be at most %s", maxTimeout)
	}
	if d < time.Millisecond {
		return 0, fieldErr(field, "must be at least 1ms")
	}
	return d, nil
}

// healthCheckPath is options.health_check_path.
func healthCheckPath(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fieldErr(field, "expected a string")
	}
	if !strings.HasPrefix(s, "/") {
		return "", fieldErr(field, "must start with /")
	}
	if strings.ContainsAny(s, " \r\n\t") {
		return "", fieldErr(field, "must not contain whitespace")
	}
	// Kong's upstream healthchecks.active.http_path is typedefs.path:
	// no empty segments, RFC 3986 characters, valid %XX escapes.
	if strings.Contains(s, "//") {
		return "", fieldErr(field, "must not have empty segments")
	}
	if msg := kongPathChars(s); msg != "" {
		return "", fieldErr(field, "%s", msg)
	}
	return s, nil
}

// kongPathChars applies the character rules of Kong's typedefs.path
// (kong/db/schema/typedefs.lua validate_path) and says what is wrong.
func kongPathChars(p string) string {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".-_~/%:@!$&'()*+,;=", c) >= 0:
		default:
			return "characters outside of the reserved list of RFC 3986 found"
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "invalid url-encoded value"
		}
		i += 2
	}
	return ""
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func rateLimit(field string, v any) (*RateLimit, error) {
	m, err := object(field, v)
	if err != nil {
		return nil, err
	}
	rl := &RateLimit{}
	if x, ok := m["enabled"]; ok && x != nil {
		if rl.Enabled, err = boolean(field+".enabled", x); err != nil {
			return nil, err
		}
	}
	if x, ok := m["requests_per_min"]; ok && x != nil {
		if rl.RequestsPerMin, err = nonNegInt(field+".requests_per_min", x, ratelimit.MaxPerMinute); err != nil {
			return nil, err
		}
	}
	if x, ok := m["per_ip"]; ok && x != nil {
		if rl.PerIP, err = boolean(field+".per_ip", x); err != nil {
			return nil, err
		}
	}
	// The plugin refuses (500s every request) an enabled limiter without a
	// rate: refuse it here, where the caller can still fix it.
	if rl.Enabled && rl.RequestsPerMin == 0 {
		return nil, fieldErr(field+".requests_per_min", "required when enabled")
	}
	return rl, nil
}

func circuitBreaker(field string, v any) (*CircuitBreaker, error) {
	m, err := object(field, v)
	if err != nil {
		return nil, err
	}
	cb := &CircuitBreaker{}
	if x, ok := m["enabled"]; ok && x != nil {
		if cb.Enabled, err = boolean(field+".enabled", x); err != nil {
			return nil, err
		}
	}
	if x, ok := m["failure_threshold"]; ok && x != nil {
		if cb.FailureThreshold, err = nonNegInt(field+".failure_threshold", x, math.MaxInt32); err != nil {
			return nil, err
		}
	}
	if x, ok := m["timeout"]; ok && x != nil {
		if cb.Timeout, err = duration(field+".timeout", x); err != nil {
			return nil, err
		}
		if cb.Timeout > maxTimeout {
			return nil, fieldErr(field+".timeout", "must be at most %s", maxTimeout)
		}
		// The plugin takes whole milliseconds >= 1; "0s" means its default.
		if cb.Timeout > 0 && cb.Timeout < time.Millisecond {
			return nil, fieldErr(field+".timeout", "must be at least 1ms")
		}
	}
	return cb, nil
}

func retry(field string, v any) (*Retry, error) {
	m, err := object(field, v)
	if err != nil {
		return nil, err
	}
	r := &Retry{}
	if x, ok := m["enabled"]; ok && x != nil {
		if r.Enabled, err = boolean(field+".enabled", x); err != nil {
			return nil, err
		}
	}
	if x, ok := m["max_attempts"]; ok && x != nil {
		// Kong's service.retries is at most 32767 and equals max_attempts-1.
		if r.MaxAttempts, err = nonNegInt(field+".max_attempts", x, 32768); err != nil {
			return nil, err
		}
	}
	if x, ok := m["backoff"]; ok && x != nil {
		s, ok := x.(string)
		if !ok {
			return nil, fieldErr(field+".backoff", "expected a string")
		}
		switch s {
		case BackoffNone, BackoffLinear, BackoffExponential:
		default:
			return nil, fieldErr(field+".backoff", "expected one of: none, linear, exponential")
		}
		r.Backoff = s
	}
	return r, nil
}
