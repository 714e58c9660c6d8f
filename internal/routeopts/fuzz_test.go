package routeopts

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: options never panic the parser; accepted options canonicalise
// to a fixed point that parses to the same Options; headers are tokens with
// values free of CR, LF and NUL; numbers and durations are in range; and
// the error for a given input is always the same text (clients and logs
// compare it).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"timeout":"45s"}`, `{"timeout":"6o"}`, `{"timeout":"0s"}`,
		`{"headers":{"X-A":"1","X-B":"2"}}`, `{"headers":{"X-A":"a\r\nb"}}`, `{"headers":{"Bad Name":"v"}}`,
		`{"headers":{"x02":true,"07":2}}`,
		`{"rate_limit":{"enabled":true,"requests_per_min":100,"per_ip":true}}`,
		`{"circuit_breaker":{"enabled":true,"failure_threshold":5,"timeout":"30s"}}`,
		`{"retry":{"enabled":true,"max_attempts":3,"backoff":"exponential"}}`, `{"retry":{"max_attempts":-1}}`,
		`{"health_check_path":"/h","health_check_interval":"10s"}`, `{"health_check_path":"h x"}`,
		`{"websocket":true,"future":{"a":[1,2]}}`, `{"timeout":1e400}`, `{"retry":{"max_attempts":1.5}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, canon, err := Parse(raw)
		_, _, err2 := Parse(raw)
		if (err == nil) != (err2 == nil) {
			t.Fatal("Parse is not deterministic")
		}
		if err != nil {
			if err.Error() != err2.Error() {
				t.Fatalf("unstable error: %q vs %q", err, err2)
			}
			return
		}
		if canon != nil {
			o2, canon2, err := Parse(canon)
			if err != nil || !bytes.Equal(canon, canon2) {
				t.Fatalf("canonical form %s not a fixed point: %s %v", canon, canon2, err)
			}
			if !reflect.DeepEqual(o, o2) {
				t.Fatalf("canonical form parses differently:\n%+v\n%+v", o, o2)
			}
			if !json.Valid(canon) {
				t.Fatalf("canonical form is not JSON: %s", canon)
			}
		}
		for name, v := range o.Headers {
			if !isToken(name) || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("accepted header %q: %q", name, v)
			}
		}
		if o.Timeout < 0 || o.Timeout > maxTimeout || o.HealthCheckInterval < 0 {
			t.Fatalf("durations out of range: %+v", o)
		}
		if r := o.Retry; r != nil && (r.MaxAttempts < 0 || (r.Backoff != "" && r.Backoff != BackoffNone && r.Backoff != BackoffLinear && r.Backoff != BackoffExponential)) {
			t.Fatalf("retry %+v", *r)
		}
		if rl := o.RateLimit; rl != nil && rl.RequestsPerMin < 0 {
			t.Fatalf("rate_limit %+v", *rl)
		}
		if cb := o.CircuitBreaker; cb != nil && (cb.FailureThreshold < 0 || cb.Timeout < 0) {
			t.Fatalf("circuit_breaker %+v", *cb)
		}
	})
}

// TestHeaderErrorStable: with two bad headers the 400 must name the same
// one every time (found by FuzzTranslate: headers() used to walk a Go map).
func TestHeaderErrorStable(t *testing.T) {
	raw := []byte(`{"headers":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}}`)
	_, _, first := Parse(raw)
	for i := 0; i < 50; i++ {
		if _, _, err := Parse(raw); err == nil || err.Error() != first.Error() {
			t.Fatalf("error changes between calls: %q vs %v", first, err)
		}
	}
}
