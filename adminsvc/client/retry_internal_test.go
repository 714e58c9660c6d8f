package client

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDelayDoublesWithJitterAndCap(t *testing.T) {
	r := Retry{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, MaxAttempts: 10}.withDefaults()
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		for n := 0; n < 200; n++ {
			d := r.delay(i + 1)
			if d < w/2 || d > w {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", i+1, d, w/2, w)
			}
		}
	}
	// Jitter really varies: 200 draws of a 400ms window are not all equal.
	seen := map[time.Duration]bool{}
	for n := 0; n < 200; n++ {
		seen[r.delay(3)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays: no jitter", len(seen))
	}
}

func TestRetryDefaults(t *testing.T) {
	r := Retry{}.withDefaults()
	if r.MaxAttempts != 4 || r.BaseDelay != 100*time.Millisecond || r.MaxDelay != 5*time.Second {
		t.Fatalf("defaults: %+v", r)
	}
}

func TestRouteOptionsKeepUnknownNames(t *testing.T) {
	in := `{"timeout":"60s","rate_limit":{"enabled":true,"requests_per_min":100},"future_option":{"x":1}}`
	var o RouteOptions
	if err := json.Unmarshal([]byte(in), &o); err != nil {
		t.Fatal(err)
	}
	if o.Timeout != "60s" || o.RateLimit == nil || o.RateLimit.RequestsPerMin != 100 {
		t.Fatalf("known fields: %+v", o)
	}
	if o.Extra["future_option"] == nil {
		t.Fatalf("unknown option lost: %+v", o.Extra)
	}
	out, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back["future_option"] == nil || back["timeout"] != "60s" {
		t.Fatalf("round trip: %s", out)
	}
}
