package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

func TestMain(m *testing.M) {
	// Keep test output readable: the handlers log every refusal.
	logOnce.Do(func() { log = slog.New(slog.NewTextHandler(logSink, nil)) })
	code := m.Run()
	backends.closeAll()
	os.Exit(code)
}

func decode(t *testing.T, js string) *Config {
	t.Helper()
	var c Config
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("decoding must never fail, got %v for %s", err, js)
	}
	return &c
}

func configErrors(c *Config) []string { return c.validate(c.compiled.decodeErrs) }

func TestDefaults(t *testing.T) {
	c := decode(t, `{}`)
	if errs := configErrors(c); len(errs) != 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	want := map[string]any{
		"Registry": "kong", "Service": "", "CacheTTLMs": 1000, "FastPath": false,
		"Redis.Host": "127.0.0.1", "Redis.Port": 6379, "Redis.TimeoutMs": 20, "Redis.KeyPrefix": "sr", "Redis.Database": 0,
		"Redis.SSL": false, "Redis.SSLVerify": false,
		"RateLimit.Enabled": false, "RateLimit.FaultTolerant": true, "RateLimit.ErrorCode": 429,
		"RateLimit.ErrorMessage": "API rate limit exceeded", "RateLimit.LimitBy": "service", "RateLimit.Burst": 0,
		"CircuitBreaker.Enabled": false, "CircuitBreaker.FailureThreshold": 5, "CircuitBreaker.TimeoutMs": 30000,
		"CircuitBreaker.ErrorCode": 503, "CircuitBreaker.FailureStatuses": every5xx(),
	}
	v := reflect.ValueOf(c).Elem()
	for path, w := range want {
		f := v
		for _, part := range strings.Split(path, ".") {
			f = f.FieldByName(part)
		}
		if !reflect.DeepEqual(f.Interface(), w) {
			t.Errorf("%s = %#v, want %#v", path, f.Interface(), w)
		}
	}
}

// Kong sends absent fields absent, unset records as {}, its own keys, and
// scope ids as ids or objects: all of it must parse (acceptance 3).
func TestKongShapesParse(t *testing.T) {
	cases := map[string]string{
		"empty":          `{}`,
		"nested empty":   `{"redis":{},"rate_limit":{},"circuit_breaker":{}}`,
		"kong keys":      `{"__plugin_id":"6f0c6ad4-5d7c-4b1c-9d5e-0b1d2f3a4b5c","__seq__":3,"__key__":"plugins:service-registry::::","registry":"redis"}`,
		"service object": `{"service_id":{"id":"1b2c"},"route_id":null,"consumer_id":null}`,
		"service id":     `{"service_id":"1b2c","route_id":"9z","consumer_id":{"id":"c1"}}`,
		"nulls":          `{"service":null,"redis":{"host":null,"sentinel_nodes":null},"circuit_breaker":{"failure_statuses":[]}}`,
		"full defaults":  `{"registry":"kong","redis":{"host":"127.0.0.1","port":6379,"database":0,"ssl":false,"ssl_verify":false,"timeout_ms":20,"key_prefix":"sr","sentinel_nodes":[],"cluster_nodes":[]},"cache_ttl_ms":1000}`,
	}
	for name, js := range cases {
		t.Run(name, func(t *testing.T) {
			c := decode(t, js)
			if errs := configErrors(c); len(errs) != 0 {
				t.Fatalf("errors: %v", errs)
			}
			if c.Redis.Port != 6379 || c.CacheTTLMs != 1000 || !c.RateLimit.FaultTolerant {
				t.Fatalf("defaults not applied: %+v", c)
			}
		})
	}
	c := decode(t, `{"service_id":{"id":"1b2c"},"__plugin_id":"p1","__seq__":7}`)
	if c.serviceID != "1b2c" || c.pluginID != "p1" || c.seq != 7 {
		t.Errorf("kong keys: %q %q %d", c.serviceID, c.pluginID, c.seq)
	}
	if c := decode(t, `{"service_id":"abc"}`); c.serviceID != "abc" {
		t.Errorf("service_id as id: %q", c.serviceID)
	}
	// Explicit false survives for a field whose default is true.
	if c := decode(t, `{"rate_limit":{"fault_tolerant":false}}`); c.RateLimit.FaultTolerant {
		t.Error("explicit false replaced by the default")
	}
}

func TestInvalidConfigs(t *testing.T) {
	cases := []struct{ js, want string }{
		{`{"registry":"bogus"}`, "registry: expected one of: kong, redis"},
		{`{"redis":{"port":0}}`, "redis.port: value should be between 1 and 65535"},
		{`{"redis":{"port":70000}}`, "redis.port: value should be between 1 and 65535"},
		{`{"redis":{"port":"6379"}}`, "redis.port: expected an integer"},
		{`{"redis":{"timeout_ms":-5}}`, "redis.timeout_ms: value should be between 1 and 2147483647"},
		{`{"redis":{"database":-1}}`, "redis.database: value should be between 0 and 2147483647"},
		{`{"redis":"x"}`, "redis: expected a record"},
		{`{"redis":{"sentinel_nodes":[{"port":1}]}, "redis2":1}`, "redis.sentinel_nodes[1].host: required field missing"},
		{`{"redis":{"cluster_nodes":[{"ip":"a","port":70000}]}}`, "redis.cluster_nodes[1].port: value should be between 1 and 65535"},
		{`{"redis":{"sentinel_master":"m"}}`, "redis.sentinel_nodes: required with sentinel_master"},
		{`{"cache_ttl_ms":0}`, "cache_ttl_ms: value should be between 1 and 86400000"},
		{`{"cache_ttl_ms":1.5}`, "cache_ttl_ms: expected an integer"},
		{`{"rate_limit":{"requests_per_min":-1}}`, "rate_limit.requests_per_min: value should be between 1 and 60000000"},
		// issue 12: accepted before, then every request got 500 ("finer than a microsecond").
		{`{"rate_limit":{"requests_per_min":100000000}}`, "rate_limit.requests_per_min: value should be between 1 and 60000000"},
		{`{"rate_limit":{"requests_per_second":0}}`, "rate_limit.requests_per_second: value should be between 1 and 1000000"},
		{`{"rate_limit":{"burst":-2}}`, "rate_limit.burst: value should be between 0 and 1000000"},
		{`{"rate_limit":{"enabled":true}}`, "rate_limit: requests_per_min or requests_per_second is required when enabled"},
		{`{"rate_limit":{"limit_by":"planet"}}`, "rate_limit.limit_by: expected one of: service, route, ip, consumer, header"},
		{`{"rate_limit":{"limit_by":"header"}}`, "rate_limit.header_name: required when limit_by is header"},
		{`{"rate_limit":{"error_code":600}}`, "rate_limit.error_code: value should be between 100 and 599"},
		{`{"rate_limit":{"enabled":"yes"}}`, "rate_limit.enabled: expected a boolean"},
		{`{"circuit_breaker":{"failure_statuses":[500,99]}}`, "circuit_breaker.failure_statuses[2]: value should be between 100 and 599"},
		{`{"circuit_breaker":{"failure_ratio":1.5}}`, "circuit_breaker.failure_ratio: value should be between 0 and 1"},
		{`{"circuit_breaker":{"failure_threshold":-1}}`, "circuit_breaker.failure_threshold: value should be between 1 and 2147483647"},
		{`{"circuit_breaker":{"half_open_max_calls":0}}`, "circuit_breaker.half_open_max_calls: value should be between 1 and 2147483647"},
		{`{"service":""}`, "service: length must be at least 1"},
		{`{"service":"a{b}"}`, "service: must not contain braces"},
		// issue 16: the fast path routes by the registry; with Kong's
		// upstream there is nothing for it to route by.
		{`{"fast_path":true}`, "fast_path: requires registry redis"},
		{`{"fast_path":"yes","registry":"redis"}`, "fast_path: expected a boolean"},
		{`[1,2]`, "config: expected a record"},
	}
	for _, c := range cases {
		t.Run(c.js, func(t *testing.T) {
			cfg := decode(t, c.js)
			errs := configErrors(cfg)
			found := false
			for _, e := range errs {
				if e == c.want {
					found = true
				}
			}
			if !found {
				t.Fatalf("want %q among %q", c.want, errs)
			}
			cp := cfg.compile()
			if cp.err == nil || !strings.HasPrefix(cp.err.Error(), "service-registry: invalid config: ") {
				t.Fatalf("compile: %v", cp.err)
			}
		})
	}
}

// every5xx is issue 4's default of circuit_breaker.failure_statuses.
func every5xx() []int {
	out := make([]int, 0, 100)
	for s := 500; s <= 599; s++ {
		out = append(out, s)
	}
	return out
}

// A list default may name a range (lo-hi, inclusive) instead of spelling
// out a hundred statuses in the tag.
func TestListDefaultRanges(t *testing.T) {
	intList := reflect.TypeOf([]int(nil))
	cases := map[string][]int{
		"500-599":     every5xx(),
		"429,500-502": {429, 500, 501, 502},
		"7":           {7},
		"":            {},
	}
	for in, want := range cases {
		got, err := typedDefault(intList, in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("typedDefault(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"599-500", "500-", "-", "500-x"} {
		if v, err := typedDefault(intList, bad); err == nil {
			t.Errorf("typedDefault(%q) = %v, want an error", bad, v)
		}
	}
}

func TestRulesParse(t *testing.T) {
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			if f.PkgPath != "" {
				continue
			}
			r, err := parseRule(f.Tag.Get("sr"))
			if err != nil {
				t.Errorf("%s.%s: %v", rt.Name(), f.Name, err)
			}
			if r.hasDef {
				if _, err := typedDefault(f.Type, r.def); err != nil {
					t.Errorf("%s.%s default: %v", rt.Name(), f.Name, err)
				}
			}
			if d := f.Tag.Get("desc"); d != "" && (len(d) < 10 || len(d) > 500) {
				t.Errorf("%s.%s: Kong wants descriptions of 10..500 characters", rt.Name(), f.Name)
			}
			if strings.Contains(f.Tag.Get("json"), ",") {
				t.Errorf("%s.%s: json tag options are taken literally by go-pdk", rt.Name(), f.Name)
			}
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(f.Type.Elem())
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
}

// buildBinary builds the plugin under its real name (go-pdk names the
// plugin after the executable).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Build(t.TempDir(), "./plugins/service-registry", "service-registry")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func runDump(t *testing.T) []byte {
	t.Helper()
	out, err := exec.Command(buildBinary(t), "-dump").Output()
	if err != nil {
		t.Fatalf("-dump: %v", err)
	}
	return out
}

func normalise(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// The checked-in snapshot (make schema) must equal the binary's -dump.
func TestDumpMatchesSnapshot(t *testing.T) {
	got := runDump(t)
	want, err := os.ReadFile("../../kong/schemas/service-registry.json")
	if err != nil {
		t.Fatalf("reading the snapshot (run make schema): %v", err)
	}
	if !reflect.DeepEqual(normalise(t, got), normalise(t, want)) {
		t.Fatalf("kong/schemas/service-registry.json differs from -dump: run `make schema`\n-dump: %s", got)
	}
}

type dumpInfo struct {
	Protocol string
	Plugins  []struct {
		Name     string
		Phases   []string
		Version  string
		Priority int
		Schema   struct {
			Name   string                       `json:"name"`
			Fields []map[string]json.RawMessage `json:"fields"`
		}
	}
}

// Every CONTRACT §3 field is in the dump, with the Go default (acceptance 2).
func TestDumpFieldsAndDefaults(t *testing.T) {
	raw := runDump(t)
	var info dumpInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	if info.Protocol != "ProtoBuf:1" || len(info.Plugins) != 1 {
		t.Fatalf("outer shape: %+v", info)
	}
	p := info.Plugins[0]
	if p.Name != "service-registry" || p.Schema.Name != "service-registry" || !reflect.DeepEqual(p.Phases, []string{"access", "log"}) || p.Priority != priority {
		t.Fatalf("plugin info: %+v", p)
	}
	var cfg field
	if len(p.Schema.Fields) != 1 || json.Unmarshal(p.Schema.Fields[0]["config"], &cfg) != nil {
		t.Fatalf("schema fields: %s", raw)
	}
	got := map[string]field{}
	flatten("", cfg, got)
	contract := strings.Fields(`registry service cache_ttl_ms fast_path
		redis.host redis.port redis.username redis.password redis.database redis.ssl redis.ssl_verify
		redis.server_name redis.timeout_ms redis.sentinel_master redis.sentinel_nodes redis.cluster_nodes redis.key_prefix
		rate_limit.enabled rate_limit.requests_per_min rate_limit.requests_per_second rate_limit.per_ip rate_limit.limit_by
		rate_limit.header_name rate_limit.burst rate_limit.fault_tolerant rate_limit.hide_client_headers
		rate_limit.error_code rate_limit.error_message
		circuit_breaker.enabled circuit_breaker.failure_threshold circuit_breaker.failure_ratio circuit_breaker.min_calls
		circuit_breaker.window_ms circuit_breaker.timeout_ms circuit_breaker.half_open_max_calls
		circuit_breaker.failure_statuses circuit_breaker.error_code`)
	for _, name := range contract {
		if _, ok := got[name]; !ok {
			t.Errorf("contract field %s missing from -dump", name)
		}
	}
	for _, rec := range []string{"redis", "rate_limit", "circuit_breaker"} {
		if !got[rec].Required || got[rec].Type != "record" {
			t.Errorf("%s: want a required record, got %+v", rec, got[rec])
		}
	}
	if fs := got["circuit_breaker.failure_statuses"]; fs.Elements == nil || fs.Elements.Type != "integer" || !reflect.DeepEqual(fs.Elements.Between, []float64{100, 599}) {
		t.Errorf("failure_statuses elements: %+v", fs.Elements)
	}
	if r := got["registry"]; !reflect.DeepEqual(r.OneOf, []string{"kong", "redis"}) {
		t.Errorf("registry one_of: %v", r.OneOf)
	}
	if r := got["redis.port"]; !reflect.DeepEqual(r.Between, []float64{1, 65535}) {
		t.Errorf("redis.port between: %v", r.Between)
	}
	// Each dumped default equals the value Go applies to an absent field.
	defs := reflect.ValueOf(defaults()).Elem()
	n := 0
	for name, f := range got {
		if f.Default == nil {
			continue
		}
		n++
		gv := goValue(defs, name)
		if !gv.IsValid() {
			t.Errorf("%s: no Go field", name)
			continue
		}
		gj, _ := json.Marshal(gv.Interface())
		var a, b any
		_ = json.Unmarshal(gj, &a)
		_ = json.Unmarshal(f.Default, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: dump default %s, Go default %s", name, f.Default, gj)
		}
		if f.Type == "string" && string(f.Default) == `""` {
			t.Errorf("%s: Kong refuses empty string defaults", name)
		}
	}
	if n < 20 {
		t.Errorf("only %d defaults in the dump", n)
	}
}

type field struct {
	Type     string                       `json:"type"`
	Required bool                         `json:"required"`
	Default  json.RawMessage              `json:"default"`
	OneOf    []string                     `json:"one_of"`
	Between  []float64                    `json:"between"`
	Fields   []map[string]json.RawMessage `json:"fields"`
	Elements *field                       `json:"elements"`
}

func flatten(prefix string, f field, out map[string]field) {
	for _, entry := range f.Fields {
		for name, raw := range entry {
			var sub field
			_ = json.Unmarshal(raw, &sub)
			out[prefix+name] = sub
			if sub.Type == "record" {
				flatten(prefix+name+".", sub, out)
			}
		}
	}
}

func goValue(v reflect.Value, dotted string) reflect.Value {
	for _, part := range strings.Split(dotted, ".") {
		t := v.Type()
		found := false
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).PkgPath == "" && jsonName(t.Field(i)) == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}
		}
	}
	return v
}

// Kong's own validation (as reproduced by tests/kongschema) accepts the
// dump, fills the defaults for config {} and refuses what the contract says.
func TestDumpAsKongSchema(t *testing.T) {
	p, err := kongschema.ParseDump(runDump(t))
	if err != nil {
		t.Fatalf("not a schema Kong accepts: %v", err)
	}
	filled, errs := p.Validate(map[string]any{})
	if errs != nil {
		t.Fatalf("config {} refused: %v", errs)
	}
	b, _ := json.Marshal(filled)
	c := decode(t, string(b))
	if e := configErrors(c); len(e) != 0 || c.Registry != "kong" || c.Redis.Port != 6379 {
		t.Fatalf("Kong-filled config: %v %+v", e, c)
	}
	_, errs = p.Validate(map[string]any{"registry": "bogus", "redis": map[string]any{"port": 70000}})
	es, _ := json.Marshal(errs)
	if !strings.Contains(string(es), "expected one of: kong, redis") || !strings.Contains(string(es), "value should be between 1 and 65535") {
		t.Fatalf("Kong errors: %s", es)
	}
}
