package routeopts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
)

// Known option names, in the order the contract lists them.
var known = []string{
	"timeout", "websocket", "headers", "rate_limit", "circuit_breaker", "retry",
	"health_check_path", "health_check_interval",
}

// Backoff strategies accepted by retry.backoff.
const (
	BackoffNone        = "none"
	BackoffLinear      = "linear"
	BackoffExponential = "exponential"
)

// Kong stores timeouts as integer milliseconds between 1 and 2^31-2.
const maxTimeout = time.Duration(math.MaxInt32-1) * time.Millisecond

// Options is the validated form of a route's options. Zero values mean
// "not set": the translator then leaves Kong's defaults alone.
type Options struct {
	Timeout             time.Duration
	Websocket           bool
	Headers             map[string]string
	RateLimit           *RateLimit
	CircuitBreaker      *CircuitBreaker
	Retry               *Retry
	HealthCheckPath     string
	HealthCheckInterval time.Duration
	// Unknown holds option names this version does not understand, sorted.
	Unknown []string
}

// RateLimit is options.rate_limit.
type RateLimit struct {
	Enabled        bool
	RequestsPerMin int
	PerIP          bool
}

// CircuitBreaker is options.circuit_breaker.
type CircuitBreaker struct {
	Enabled          bool
	FailureThreshold int
	Timeout          time.Duration
}

// Retry is options.retry.
type Retry struct {
	Enabled     bool
	MaxAttempts int
	Backoff     string
}

// FieldError names the offending field with its full path, e.g.
// `options.timeout: invalid duration "6o"`.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Parse validates raw (the JSON value of "options"; empty or null means none)
// and returns the parsed options plus the canonical JSON to store: keys
// sorted, no insignificant whitespace, numbers as written. Two requests with
// the same options in a different key order or spacing canonicalise to the
// same bytes, which is what makes re-registration idempotent. canonical is nil
// when there are no options.
func Parse(raw json.RawMessage) (opts Options, canonical json.RawMessage, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return Options{}, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return Options{}, nil, fieldErr("options", "invalid JSON: %v", err)
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return Options{}, nil, fieldErr("options", "expected an object")
	}
	if err := opts.fill(obj); err != nil {
		return Options{}, nil, err
	}
	if len(obj) == 0 {
		return opts, nil, nil
	}
	// One spelling per duration ("1m" and "60s" are the same option), so
	// re-registering with another spelling is the idempotent case.
	canonDuration(obj, "timeout")
	canonDuration(obj, "health_check_interval")
	if cb, ok := obj["circuit_breaker"].(map[string]any); ok {
		canonDuration(cb, "timeout")
	}
	// encoding/json sorts map keys and keeps json.Number text verbatim.
	canonical, err = json.Marshal(obj)
	if err != nil {
		return Options{}, nil, fmt.Errorf("canonicalising options: %w", err)
	}
	return opts, canonical, nil
}

// ParseStored parses options already validated and stored. It never
// fails on unknown names; a stored value that no longer validates returns
// the error so the caller can report that one route.
func ParseStored(raw json.RawMessage) (Options, error) {
	o, _, err := Parse(raw)
	return o, err
}

// Canonical returns the canonical form of raw, or raw unchanged when it does
// not parse (the caller already rejected it).
func Canonical(raw json.RawMessage) json.RawMessage {
	_, c, err := Parse(raw)
	if err != nil {
		return raw
	}
	return c
}

func isKnown(name string) bool {
	for _, k := range known {
		if k == name {
			return true
		}
	}
	return false
}

func (o *Options) fill(obj map[string]any) error {
	// Validate in a fixed order so the first error reported is stable.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !isKnown(k) {
			o.Unknown = append(o.Unknown, k)
		}
	}
	var err error
	for _, name := range known {
		v, ok := obj[name]
		if !ok || v == nil {
			continue
		}
		f := "options." + name
		switch name {
		case "timeout":
			if o.Timeout, err = duration(f, v); err != nil {
				return err
			}
			if o.Timeout > maxTimeout {
				return fieldErr(f, "must be at most %s", maxTimeout)
			}
			if o.Timeout < time.Millisecond {
				return fieldErr(f, "must be at least 1ms")
			}
		case "websocket":
			if o.Websocket, err = boolean(f, v); err != nil {
				return err
			}
		case "headers":
			if o.Headers, err = headers(f, v); err != nil {
				return err
			}
		case "rate_limit":
			if o.RateLimit, err = rateLimit(f, v); err != nil {
				return err
			}
		case "circuit_breaker":
			if o.CircuitBreaker, err = circuitBreaker(f, v); err != nil {
				return err
			}
		case "retry":
			if o.Retry, err = retry(f, v); err != nil {
				return err
			}
		case "health_check_path":
			s, ok := v.(string)
			if !ok {
				return fieldErr(f, "expected a string")
			}
			if !strings.HasPrefix(s, "/") {
				return fieldErr(f, "must start with /")
			}
			if strings.ContainsAny(s, " \r\n\t") {
				return fieldErr(f, "must not contain whitespace")
			}
			// Kong's upstream healthchecks.active.http_path is typedefs.path:
			// no empty segments, RFC 3986 characters, valid %XX escapes.
			if strings.Contains(s, "//") {
				return fieldErr(f, "must not have empty segments")
			}
			if msg := kongPathChars(s); msg != "" {
				return fieldErr(f, "%s", msg)
			}
			o.HealthCheckPath = s
		case "health_check_interval":
			if o.HealthCheckInterval, err = duration(f, v); err != nil {
				return err
			}
			// Kong's healthcheck interval is seconds in [0, 65535].
			if o.HealthCheckInterval > 65535*time.Second {
				return fieldErr(f, "must be at most 65535s")
			}
		}
	}
	return nil
}

// canonDuration rewrites a validated duration as whole seconds ("60s"),
// else whole milliseconds ("500ms"), else Go's form: the spellings go-proxy
// clients use ("30s", "60s") stay as they are.
func canonDuration(obj map[string]any, name string) {
	s, ok := obj[name].(string)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return
	}
	switch {
	case d%time.Second == 0:
		obj[name] = strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		obj[name] = strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	default:
		obj[name] = d.String()
	}
}

func duration(field string, v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fieldErr(field, "expected a duration string like \"30s\"")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fieldErr(field, "invalid duration %q", s)
	}
	if d < 0 {
		return 0, fieldErr(field, "must not be negative")
	}
	return d, nil
}

func boolean(field string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fieldErr(field, "expected a boolean")
	}
	return b, nil
}

func nonNegInt(field string, v any, max int64) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fieldErr(field, "expected an integer")
	}
	i, err := n.Int64()
	if err != nil {
		return 0, fieldErr(field, "expected an integer")
	}
	if i < 0 {
		return 0, fieldErr(field, "must not be negative")
	}
	if i > max {
		return 0, fieldErr(field, "must be at most %d", max)
	}
	return int(i), nil
}

func object(field string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr(field, "expected an object")
	}
	return m, nil
}

func headers(field string, v any) (map[string]string, error) {
	m, err := object(field, v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	// Sorted, so a body with several bad headers always names the same one.
	for _, name := range slices.Sorted(maps.Keys(m)) {
		hv := m[name]
		f := field + "." + name
		if !isToken(name) {
			return nil, fieldErr(field, "invalid header name %q", name)
		}
		s, ok := hv.(string)
		if !ok {
			return nil, fieldErr(f, "expected a string")
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, fieldErr(f, "header value must not contain CR, LF or NUL")
		}
		out[name] = s
	}
	return out, nil
}

// isToken reports whether s is an RFC 9110 token (a valid header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
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
