package routeopts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
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
			if o.Timeout, err = timeout(f, v); err != nil {
				return err
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
			if o.HealthCheckPath, err = healthCheckPath(f, v); err != nil {
				return err
			}
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
