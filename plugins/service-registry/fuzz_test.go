package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// FuzzConfig feeds arbitrary config JSON to the plugin's decoder the way
// go-pdk does (Config.UnmarshalJSON) and checks:
//   - decoding never fails and validation never panics (a decoding error
//     would make Kong retry the instance start forever);
//   - a config with no problems has every field in its declared range;
//   - whatever Kong's schema accepts (after Kong fills defaults), the
//     plugin's decoder accepts too: the two never disagree;
//   - the redis password never appears in a validation message (those are
//     logged and sent to clients).
func FuzzConfig(f *testing.F) {
	dump, err := os.ReadFile("../../kong/schemas/service-registry.json")
	if err != nil {
		f.Fatal(err)
	}
	schema, err := kongschema.ParseDump(dump)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{}`, `{"registry":"kong"}`, `null`, `[]`, `{"registry":5,"redis":"x","cache_ttl_ms":"x"}`,
		`{"registry":"redis","service":"orders","redis":{"host":"127.0.0.1","port":6379,"password":"s3cr3t-pw","timeout_ms":500,"ssl":true,"ssl_verify":true,"server_name":"r"}}`,
		`{"registry":"redis","redis":{"cluster_nodes":[{"ip":"127.0.0.1","port":7000}],"sentinel_master":"m"}}`,
		`{"registry":"redis","redis":{"sentinel_master":"m","sentinel_nodes":[{"host":"h"}]}}`,
		`{"rate_limit":{"enabled":true,"requests_per_min":100,"limit_by":"header"},"circuit_breaker":{"enabled":true,"failure_statuses":[]}}`,
		`{"rate_limit":{"enabled":true,"requests_per_second":1.5,"burst":-1,"error_code":99}}`,
		`{"circuit_breaker":{"failure_ratio":1.01,"failure_statuses":[99,600]}}`,
		`{"redis":{"password":123456789}}`, `{"redis":{"port":70000,"password":"hunter2hunter2"}}`,
		`{"service":"a{b}","__plugin_id":"p","__seq__":3,"service_id":{"id":"s"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Config{}
		if err := c.UnmarshalJSON(b); err != nil {
			t.Fatalf("UnmarshalJSON failed: %v", err)
		}
		errs := c.validate(c.compiled.decodeErrs)
		_ = redisKey(c.Redis)

		if pw := passwordIn(b); len(pw) >= 6 {
			for _, e := range errs {
				if strings.Contains(e, pw) {
					t.Fatalf("validation message leaks the redis password: %q", e)
				}
			}
		}
		if len(errs) == 0 {
			checkRanges(t, c)
		}

		var m map[string]any
		if json.Unmarshal(b, &m) != nil || m == nil {
			return
		}
		filled, kerrs := schema.Validate(m)
		if len(kerrs) > 0 {
			return
		}
		raw, _ := json.Marshal(filled)
		k := &Config{}
		if err := k.UnmarshalJSON(raw); err != nil {
			t.Fatalf("UnmarshalJSON of Kong's config failed: %v", err)
		}
		if len(k.compiled.decodeErrs) > 0 {
			t.Fatalf("Kong accepts %s but the plugin's decoder refuses it: %v", raw, k.compiled.decodeErrs)
		}
	})
}

func passwordIn(b []byte) string {
	var v struct {
		Redis struct {
			Password string `json:"password"`
		} `json:"redis"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Redis.Password
}

func checkRanges(t *testing.T, c *Config) {
	t.Helper()
	r, rl, cb := c.Redis, c.RateLimit, c.CircuitBreaker
	bad := func(what string, v any) { t.Fatalf("valid config with %s = %v", what, v) }
	if c.Registry != "kong" && c.Registry != "redis" {
		bad("registry", c.Registry)
	}
	if c.CacheTTLMs < 1 || c.CacheTTLMs > 86400000 {
		bad("cache_ttl_ms", c.CacheTTLMs)
	}
	if r.Port < 1 || r.Port > 65535 || r.TimeoutMs < 1 || r.Database < 0 {
		bad("redis", r)
	}
	for _, n := range r.ClusterNodes {
		if n.IP == "" || n.Port < 1 || n.Port > 65535 {
			bad("cluster node", n)
		}
	}
	for _, n := range r.SentinelNodes {
		if n.Host == "" || n.Port < 1 || n.Port > 65535 {
			bad("sentinel node", n)
		}
	}
	switch rl.LimitBy {
	case "service", "route", "ip", "consumer", "header":
	default:
		bad("rate_limit.limit_by", rl.LimitBy)
	}
	if rl.RequestsPerMin < 0 || rl.RequestsPerSecond < 0 || rl.Burst < 0 || rl.ErrorCode < 100 || rl.ErrorCode > 599 {
		bad("rate_limit", rl)
	}
	if cb.FailureThreshold < 1 || cb.FailureRatio < 0 || cb.FailureRatio > 1 || cb.MinCalls < 1 || cb.WindowMs < 1 ||
		cb.TimeoutMs < 1 || cb.HalfOpenMaxCalls < 1 || cb.ErrorCode < 100 || cb.ErrorCode > 599 {
		bad("circuit_breaker", cb)
	}
	for _, s := range cb.FailureStatuses {
		if s < 100 || s > 599 {
			bad("circuit_breaker.failure_statuses", cb.FailureStatuses)
		}
	}
}
