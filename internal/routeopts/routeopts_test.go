package routeopts

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	raw := `{"timeout":"60s","websocket":true,"headers":{"X-API-Version":"2.0"},
	"rate_limit":{"enabled":true,"requests_per_min":100,"per_ip":true},
	"circuit_breaker":{"enabled":true,"failure_threshold":5,"timeout":"30s"},
	"retry":{"enabled":true,"max_attempts":3,"backoff":"exponential"},
	"health_check_path":"/health","health_check_interval":"30s","zz_future":{"a":1}}`
	o, canon, err := Parse(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	if o.Timeout != time.Minute || !o.Websocket || o.Headers["X-API-Version"] != "2.0" {
		t.Fatalf("basic options: %+v", o)
	}
	if *o.RateLimit != (RateLimit{true, 100, true}) {
		t.Fatalf("rate_limit %+v", *o.RateLimit)
	}
	if *o.CircuitBreaker != (CircuitBreaker{true, 5, 30 * time.Second}) {
		t.Fatalf("circuit_breaker %+v", *o.CircuitBreaker)
	}
	if *o.Retry != (Retry{true, 3, "exponential"}) {
		t.Fatalf("retry %+v", *o.Retry)
	}
	if o.HealthCheckPath != "/health" || o.HealthCheckInterval != 30*time.Second {
		t.Fatalf("health check %+v", o)
	}
	if len(o.Unknown) != 1 || o.Unknown[0] != "zz_future" {
		t.Fatalf("unknown %v", o.Unknown)
	}
	var back map[string]any
	if err := json.Unmarshal(canon, &back); err != nil {
		t.Fatal(err)
	}
	if back["zz_future"] == nil {
		t.Fatal("unknown option dropped from canonical form")
	}
}

func TestCanonicalIsOrderAndSpaceIndependent(t *testing.T) {
	a := Canonical(json.RawMessage(`{"timeout":"60s", "headers":{"B":"2","A":"1"},"n":1.50}`))
	b := Canonical(json.RawMessage(`{ "n":1.50,"headers":{"A":"1","B":"2"},"timeout":"60s"}`))
	if string(a) != string(b) {
		t.Fatalf("%s != %s", a, b)
	}
	if string(a) != `{"headers":{"A":"1","B":"2"},"n":1.50,"timeout":"60s"}` {
		t.Fatalf("canonical %s", a)
	}
	for _, empty := range []string{``, `null`, `{}`, ` `} {
		if c := Canonical(json.RawMessage(empty)); c != nil {
			t.Fatalf("%q canonicalised to %s", empty, c)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		`{"timeout":"6o"}`:                             `options.timeout: invalid duration "6o"`,
		`{"timeout":60}`:                               `options.timeout: expected a duration string like "30s"`,
		`{"timeout":"-1s"}`:                            `options.timeout: must not be negative`,
		`{"timeout":"0s"}`:                             `options.timeout: must be at least 1ms`,
		`{"websocket":"yes"}`:                          `options.websocket: expected a boolean`,
		`{"headers":[]}`:                               `options.headers: expected an object`,
		`{"headers":{"X-A":1}}`:                        `options.headers.X-A: expected a string`,
		`{"headers":{"Bad Name":"v"}}`:                 `options.headers: invalid header name "Bad Name"`,
		`{"headers":{"X-A":"a\r\nSet-Cookie: x"}}`:     `options.headers.X-A: header value must not contain CR, LF or NUL`,
		`{"rate_limit":{"requests_per_min":-1}}`:       `options.rate_limit.requests_per_min: must not be negative`,
		`{"rate_limit":{"requests_per_min":60000001}}`: `options.rate_limit.requests_per_min: must be at most 60000000`,
		`{"rate_limit":{"requests_per_min":1.5}}`:      `options.rate_limit.requests_per_min: expected an integer`,
		`{"rate_limit":{"enabled":1}}`:                 `options.rate_limit.enabled: expected a boolean`,
		`{"circuit_breaker":{"failure_threshold":-5}}`: `options.circuit_breaker.failure_threshold: must not be negative`,
		`{"circuit_breaker":{"timeout":"soon"}}`:       `options.circuit_breaker.timeout: invalid duration "soon"`,
		`{"retry":{"max_attempts":-3}}`:                `options.retry.max_attempts: must not be negative`,
		`{"retry":{"backoff":"random"}}`:               `options.retry.backoff: expected one of: none, linear, exponential`,
		`{"health_check_path":"health"}`:               `options.health_check_path: must start with /`,
		`{"health_check_interval":"1x"}`:               `options.health_check_interval: invalid duration "1x"`,
		`[]`:                                           `options: expected an object`,
		`{"retry":true}`:                               `options.retry: expected an object`,
	}
	for in, want := range cases {
		_, _, err := Parse(json.RawMessage(in))
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}

func TestParseRefusesWhatThePluginRefuses(t *testing.T) {
	for raw, want := range map[string]string{
		`{"rate_limit":{"enabled":true}}`:                        "options.rate_limit.requests_per_min: required when enabled",
		`{"rate_limit":{"enabled":true,"requests_per_min":0}}`:   "options.rate_limit.requests_per_min: required when enabled",
		`{"circuit_breaker":{"enabled":true,"timeout":"500us"}}`: "options.circuit_breaker.timeout: must be at least 1ms",
		`{"health_check_path":"/a//b"}`:                          "options.health_check_path: must not have empty segments",
		`{"health_check_path":"/a<b>"}`:                          "options.health_check_path: characters outside of the reserved list of RFC 3986 found",
		`{"health_check_path":"/a%zz"}`:                          "options.health_check_path: invalid url-encoded value",
	} {
		_, _, err := Parse(json.RawMessage(raw))
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
	for _, ok := range []string{`{"rate_limit":{"enabled":false}}`, `{"rate_limit":{"per_ip":true}}`, `{"circuit_breaker":{"timeout":"0s"}}`} {
		if _, _, err := Parse(json.RawMessage(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
