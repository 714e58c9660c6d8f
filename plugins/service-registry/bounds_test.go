package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// The rate limit's schema bounds are the limiter's own (issue 12: "config
// Kong accepts, the plugin runs"; requests_per_min 100000000 passed the
// schema and every request then got 500, "finer than a microsecond").
func TestRateLimitBoundsAreTheLimiters(t *testing.T) {
	typ := reflect.TypeOf(RateLimitConfig{})
	for name, want := range map[string][2]float64{
		"RequestsPerSecond": {1, ratelimit.MaxPerSecond},
		"RequestsPerMin":    {1, ratelimit.MaxPerMinute},
		"Burst":             {0, ratelimit.MaxBurst},
	} {
		f, _ := typ.FieldByName(name)
		r := fieldRule(f)
		if r.between == nil || r.between[0] != want[0] || r.between[1] != want[1] {
			t.Errorf("rate_limit.%s: between %v, the limiter's bounds are %v", jsonName(f), r.between, want)
		}
	}
}

// numericField is one numeric config field (or the elements of an integer
// list) and its declared bounds.
type numericField struct {
	path   []string // JSON path; "[]" marks an array element
	lo, hi float64
	float  bool
}

// numericFields lists every numeric field of t with between bounds; a
// numeric field without them fails the test (every value Kong accepts must
// be one the plugin runs with, so each needs its bounds declared).
func numericFields(t *testing.T, typ reflect.Type, prefix []string) []numericField {
	var out []numericField
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.PkgPath != "" {
			continue
		}
		path := append(append([]string(nil), prefix...), jsonName(f))
		r := fieldRule(f)
		switch {
		case isRecord(f.Type):
			out = append(out, numericFields(t, f.Type, path)...)
		case f.Type.Kind() == reflect.Slice && isRecord(f.Type.Elem()):
			out = append(out, numericFields(t, f.Type.Elem(), append(path, "[]"))...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Int:
			if r.elemBetween == nil {
				t.Errorf("%s: integer list without elem_between", strings.Join(path, "."))
				continue
			}
			out = append(out, numericField{path: append(path, "[]"), lo: r.elemBetween[0], hi: r.elemBetween[1]})
		case f.Type.Kind() == reflect.Int || f.Type.Kind() == reflect.Float64:
			if r.between == nil {
				t.Errorf("%s: numeric field without between bounds", strings.Join(path, "."))
				continue
			}
			out = append(out, numericField{path: path, lo: r.between[0], hi: r.between[1], float: f.Type.Kind() == reflect.Float64})
		}
	}
	return out
}

// setPath sets v at path in cfg, creating records and one-element arrays
// (with the sibling fields an element requires) on the way.
func setPath(cfg map[string]any, path []string, v any) {
	m := cfg
	for i, k := range path[:len(path)-1] {
		if path[i+1] == "[]" {
			if i+2 == len(path) {
				m[k] = []any{v}
				return
			}
			el := map[string]any{"host": "127.0.0.1", "ip": "127.0.0.1"}
			if k == "sentinel_nodes" {
				delete(el, "ip")
				m["sentinel_master"] = "mymaster"
			} else {
				delete(el, "host")
			}
			m[k] = []any{el}
			setPath(el, path[i+2:], v)
			return
		}
		if k == "[]" {
			continue
		}
		next, _ := m[k].(map[string]any)
		if next == nil {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

// Every numeric field at its bounds (and just outside them): what Kong's
// schema validation accepts, the plugin runs (no refused config, no 500,
// no panic in access or log); what it refuses is just past the bounds.
// The plugin runs with every guard on, against a real Redis.
func TestEveryNumericFieldAtItsBoundsRuns(t *testing.T) {
	dump, err := os.ReadFile(filepath.Join("..", "..", "kong", "schemas", "service-registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := kongschema.ParseDump(dump)
	if err != nil {
		t.Fatal(err)
	}
	fx := newFixture(t)
	fx.put(t, "bounds", "a", "127.0.0.1:9", 1)
	logs := captureLogs(t)
	fields := numericFields(t, reflect.TypeOf(Config{}), nil)
	if len(fields) < 18 { // 18 today: a lost walk must not pass for a clean one
		t.Fatalf("only %d numeric fields found", len(fields))
	}
	for n, f := range fields {
		name := strings.ReplaceAll(strings.Join(f.path, "."), ".[]", "[]")
		step := 1.0
		if f.float {
			step = 0.001
		}
		for _, v := range []float64{f.lo - step, f.lo, f.hi, f.hi + step} {
			cfg := map[string]any{
				"registry": "redis", "service": "bounds",
				"redis":           map[string]any{"port": fx.srv.Port, "timeout_ms": 5000},
				"rate_limit":      map[string]any{"enabled": true, "requests_per_second": 1000, "burst": 10, "limit_by": "ip"},
				"circuit_breaker": map[string]any{"enabled": true},
			}
			setPath(cfg, f.path, v)
			filled, errs := schema.Validate(cfg)
			inside := v >= f.lo && v <= f.hi
			if (errs == nil) != inside {
				t.Errorf("%s = %v: Kong's schema errors %v, want accepted = %v", name, v, errs, inside)
				continue
			}
			if errs != nil {
				continue
			}
			in := schema.ForPlugin(filled)
			in["__plugin_id"] = fmt.Sprintf("bounds-%d", n) // as Kong adds it
			b, _ := json.Marshal(in)
			logs.Reset()
			what := runsWith(t, b)
			if what == "" && strings.Contains(logs.String(), "panic") {
				what = "panics"
			}
			if what != "" {
				t.Errorf("%s = %v: accepted by Kong's schema, but the plugin %s\n%s", name, v, what, logs.String())
			}
		}
	}
}

// runsWith runs a few requests (access and log) with a config and says
// what went wrong ("" when nothing did).
func runsWith(t *testing.T, config []byte) string {
	t.Helper()
	c := decode(t, string(config))
	if cp := c.compile(); cp.err != nil {
		return "refuses the config: " + cp.err.Error()
	}
	doc := serializedDoc(502, "upstream", "127.0.0.1:9:502:failed", "127.0.0.1:9")
	for i := 0; i < 3; i++ {
		k := &fakeKong{ip: "192.0.2.7", reqHeaders: map[string]string{"host": "h"}, serialized: doc}
		c.access(k)
		if k.status == 500 {
			return fmt.Sprintf("answers 500: %s", k.body)
		}
		c.log(k)
	}
	return ""
}

// logSink receives the plugin's logs in tests (TestMain points the logger
// at it once): discarded unless a test captures them. Swapping the
// logger itself would race with background goroutines logging.
var logSink = &logBuffer{mu: make(chan struct{}, 1)}

// logBuffer is a bytes.Buffer safe for the handlers' loggers.
type logBuffer struct {
	mu      chan struct{}
	capture bool
	buf     bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	if !l.capture {
		return len(p), nil
	}
	return l.buf.Write(p)
}

func (l *logBuffer) Reset() { l.mu <- struct{}{}; l.buf.Reset(); <-l.mu }

func (l *logBuffer) String() string {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.buf.String()
}

func (l *logBuffer) setCapture(on bool) { l.mu <- struct{}{}; l.capture = on; l.buf.Reset(); <-l.mu }

// captureLogs keeps the plugin's logs for the test (a panic in the log
// phase is only logged).
func captureLogs(t *testing.T) *logBuffer {
	logSink.setCapture(true)
	t.Cleanup(func() { logSink.setCapture(false) })
	return logSink
}
