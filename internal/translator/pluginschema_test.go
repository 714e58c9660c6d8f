package translator

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
	"github.com/kong-service-registry/service-registry/internal/routeopts"
	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// snapshotSchema is the plugin's schema as Kong loads it: the -dump
// snapshot kong/schemas/service-registry.json.
func snapshotSchema(t testing.TB) *kongschema.Plugin {
	t.Helper()
	dump, err := os.ReadFile(filepath.Join("..", "..", "kong", "schemas", "service-registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := kongschema.ParseDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

// schemaAccepts sends a plugin config the way the sync does (JSON) through
// Kong's validation of it, which fills the defaults, and the plugin's own
// checks: in is what was sent, filled what the plugin receives, and why
// says who refused it ("" when neither did).
func schemaAccepts(schema *kongschema.Plugin, cfg map[string]any) (in, filled map[string]any, why string) {
	b, _ := json.Marshal(cfg)
	_ = json.Unmarshal(b, &in)
	filled, errs := schema.Validate(in)
	if errs != nil {
		return in, nil, fmt.Sprintf("Kong refuses plugin config %s: %v", b, errs)
	}
	if e := pluginRefuses(schema.ForPlugin(filled)); len(e) > 0 {
		return in, filled, fmt.Sprintf("plugin refuses config %s: %v", b, e)
	}
	return in, filled, ""
}

// pluginRefuses applies the plugin's cross-field checks that the schema
// cannot express (plugins/service-registry/config.go, Config.validate) to
// the config the plugin receives. They are restated here because that code
// lives in package main; keep the two in step.
func pluginRefuses(cfg map[string]any) []string {
	var errs []string
	num := func(m map[string]any, k string) float64 { f, _ := m[k].(float64); return f }
	if rl, ok := cfg["rate_limit"].(map[string]any); ok && rl["enabled"] == true {
		if num(rl, "requests_per_min") == 0 && num(rl, "requests_per_second") == 0 {
			errs = append(errs, "rate_limit: requests_per_min or requests_per_second is required when enabled")
		}
		if rl["limit_by"] == "header" && rl["header_name"] == nil {
			errs = append(errs, "rate_limit.header_name: required when limit_by is header")
		}
	}
	if cb, ok := cfg["circuit_breaker"].(map[string]any); ok && cb["enabled"] == true {
		if l, _ := cb["failure_statuses"].([]any); len(l) == 0 {
			errs = append(errs, "circuit_breaker.failure_statuses: at least one status is required when enabled")
		}
	}
	if cfg["registry_routes"] == true && cfg["registry"] != "redis" {
		errs = append(errs, "registry_routes: requires registry redis")
	}
	if cfg["registry_routes"] == true && cfg["fast_path"] == true {
		errs = append(errs, "registry_routes: not with fast_path")
	}
	if s, _ := cfg["service"].(string); strings.ContainsAny(s, "{}") {
		errs = append(errs, "service: must not contain braces")
	}
	return errs
}

// TestEveryAcceptedOptionIsAcceptedByThePlugin feeds options that routeopts
// accepts through the translator into Kong's schema validation of the
// plugin (the -dump snapshot Kong loads) and the plugin's own checks:
// nothing adminsvc stores may be refused by Kong or 500 in the plugin.
func TestEveryAcceptedOptionIsAcceptedByThePlugin(t *testing.T) {
	schema := snapshotSchema(t)
	var cases []string
	for _, rl := range []string{``, `"enabled":false`, `"enabled":true,"requests_per_min":1`, `"enabled":true,"requests_per_min":` + strconv.Itoa(ratelimit.MaxPerMinute) + `,"per_ip":true`,
		`"enabled":true,"requests_per_min":` + strconv.Itoa(ratelimit.MaxBurst+2),
		`"enabled":false,"requests_per_min":0`, `"per_ip":true`, `"enabled":true,"requests_per_min":0`, `"enabled":true`} {
		cases = append(cases, `{"rate_limit":{`+rl+`}}`)
	}
	for _, cb := range []string{``, `"enabled":true`, `"enabled":true,"failure_threshold":0`, `"enabled":true,"failure_threshold":1,"timeout":"1ms"`,
		`"enabled":false,"timeout":"0s"`, `"enabled":true,"timeout":"500us"`, `"enabled":true,"timeout":"1.5ms"`,
		`"enabled":true,"failure_threshold":2147483647,"timeout":"596h31m23.647s"`} {
		cases = append(cases, `{"circuit_breaker":{`+cb+`}}`)
	}
	cases = append(cases, `{"timeout":"1ms","retry":{"enabled":true,"max_attempts":32768},"headers":{"X-A":"b:c"},"websocket":true}`,
		`{"retry":{"enabled":true,"max_attempts":0,"backoff":"linear"},"health_check_path":"/h","health_check_interval":"65535s"}`)
	for _, hp := range []string{"/a//b", "/a<b>", "/a%zz", "/h%20ealth", "/ok/"} {
		cases = append(cases, `{"health_check_path":"`+hp+`"}`)
	}
	// The routeopts fuzz seeds too, so a new option is covered once seeded.
	seeds, _ := filepath.Glob(filepath.Join("..", "routeopts", "testdata", "fuzz", "*", "*"))
	for _, f := range seeds {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "[]byte("); ok {
				var s string
				if _, err := fmt.Sscanf(strings.TrimSuffix(v, ")"), "%q", &s); err == nil {
					cases = append(cases, s)
				}
			}
		}
	}
	accepted := 0
	for _, raw := range cases {
		o, _, err := routeopts.Parse(json.RawMessage(raw))
		if err != nil {
			continue // refused at the API: fine
		}
		accepted++
		cfg := RegistryConfig("sr-a.example.com_", true, o, Options{Redis: map[string]any{"host": "10.0.0.5", "port": 6380, "ssl": true, "ssl_verify": true, "server_name": "redis.internal"}})
		if _, _, why := schemaAccepts(schema, cfg); why != "" {
			t.Errorf("options %s: %s", raw, why)
		}
	}
	if accepted < 10 {
		t.Fatalf("only %d option sets accepted; the test checks too little", accepted)
	}
}
