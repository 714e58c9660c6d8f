package kongfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func call(t *testing.T, f *Fake, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func TestSchemaViolationsLikeKong(t *testing.T) {
	f := New(Options{})
	st, b := call(t, f, "POST", "/services", map[string]any{"name": "bad name", "port": 70000})
	if st != 400 || b["code"] != 2.0 || b["name"] != "schema violation" {
		t.Fatalf("%d %v", st, b)
	}
	fields := b["fields"].(map[string]any)
	if fields["host"] != "required field missing" || fields["port"] != "value should be between 0 and 65535" ||
		!strings.HasPrefix(fields["name"].(string), "invalid value 'bad name': the only accepted ascii characters") {
		t.Fatalf("fields %v", fields)
	}
	if !strings.HasPrefix(b["message"].(string), "3 schema violations (host: required field missing; name: ") {
		t.Fatalf("message %q", b["message"])
	}
	st, b = call(t, f, "POST", "/services", map[string]any{"host": "x.internal", "retries": "5"})
	if st != 400 || b["message"] != "schema violation (retries: expected an integer)" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/services", map[string]any{"host": "x.internal", "bogus": 1})
	if st != 400 || b["fields"].(map[string]any)["bogus"] != "unknown field" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/upstreams", map[string]any{"name": "10.0.0.1"})
	if st != 400 || b["fields"].(map[string]any)["name"] != "Invalid name ('10.0.0.1'); no ip addresses allowed" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/routes", map[string]any{"name": "r"})
	if st != 400 || b["message"] != "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/routes", map[string]any{"paths": []string{"v2"}, "hosts": []string{"a.*.com"}})
	fe := b["fields"].(map[string]any)
	if st != 400 || fe["paths"].([]any)[0] != "should start with: / (fixed path) or ~/ (regex path)" || fe["hosts"].([]any)[0] != "invalid wildcard: must be placed at leftmost or rightmost label" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/plugins", map[string]any{"name": "nope"})
	if st != 400 || b["fields"].(map[string]any)["name"] != "plugin 'nope' not enabled; add it to the 'plugins' configuration property" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/services", "{not json")
	if st != 400 || b["message"] != "Cannot parse JSON body" {
		t.Fatalf("%d %v", st, b)
	}
}

func TestCRUDUniqueForeignAndDefaults(t *testing.T) {
	f := New(Options{})
	st, svc := call(t, f, "POST", "/services", map[string]any{"name": "s1", "url": "https://backend.internal/api"})
	if st != 201 || svc["protocol"] != "https" || svc["port"] != 443.0 || svc["path"] != "/api" || svc["retries"] != 5.0 || svc["read_timeout"] != 60000.0 || svc["tls_verify"] != nil {
		t.Fatalf("%d %v", st, svc)
	}
	if _, ok := svc["tls_verify"]; !ok {
		t.Fatal("unset fields must be shown as null")
	}
	st, b := call(t, f, "POST", "/services", map[string]any{"name": "s1", "host": "x"})
	if st != 409 || b["code"] != 5.0 || b["message"] != `UNIQUE violation detected on '{name="s1"}'` {
		t.Fatalf("%d %v", st, b)
	}
	st, rt := call(t, f, "POST", "/services/s1/routes", map[string]any{"name": "r1", "paths": []string{"/a"}})
	if st != 201 || rt["service"].(map[string]any)["id"] != svc["id"] || rt["strip_path"] != true || rt["https_redirect_status_code"] != 426.0 {
		t.Fatalf("%d %v", st, rt)
	}
	st, b = call(t, f, "POST", "/routes", map[string]any{"paths": []string{"/b"}, "service": map[string]any{"id": "6bc14503-8688-5121-9637-3afddb7fd154"}})
	if st != 400 || b["code"] != 4.0 || !strings.Contains(b["message"].(string), "does not reference an existing 'services' entity") {
		t.Fatalf("%d %v", st, b)
	}
	// A service with routes cannot be deleted; plugins cascade.
	call(t, f, "POST", "/services/s1/plugins", map[string]any{"name": "response-transformer", "config": map[string]any{"add": map[string]any{"headers": []string{"X-A:1"}}}})
	st, b = call(t, f, "DELETE", "/services/s1", nil)
	if st != 400 || b["message"] != "an existing 'routes' entity references this 'services' entity" {
		t.Fatalf("%d %v", st, b)
	}
	if st, _ := call(t, f, "DELETE", "/routes/r1", nil); st != 204 {
		t.Fatal(st)
	}
	if st, _ := call(t, f, "DELETE", "/services/s1", nil); st != 204 || len(f.List("plugins")) != 0 {
		t.Fatalf("%d plugins %d", st, len(f.List("plugins")))
	}
	if st, b := call(t, f, "GET", "/services/s1", nil); st != 404 || b["message"] != "Not found" {
		t.Fatalf("%d %v", st, b)
	}
	// PUT by name creates then replaces; PATCH merges.
	if st, _ := call(t, f, "PUT", "/services/s2", map[string]any{"host": "a.internal"}); st != 200 {
		t.Fatal(st)
	}
	if st, b := call(t, f, "PATCH", "/services/s2", map[string]any{"port": 8080}); st != 200 || b["host"] != "a.internal" || b["port"] != 8080.0 {
		t.Fatalf("%d %v", st, b)
	}
	// Targets: default port 8000, unique per upstream, no top-level endpoint.
	call(t, f, "POST", "/upstreams", map[string]any{"name": "u1.internal"})
	st, tg := call(t, f, "POST", "/upstreams/u1.internal/targets", map[string]any{"target": "10.0.0.1"})
	if st != 201 || tg["target"] != "10.0.0.1:8000" || tg["weight"] != 100.0 {
		t.Fatalf("%d %v", st, tg)
	}
	if st, _ := call(t, f, "POST", "/upstreams/u1.internal/targets", map[string]any{"target": "10.0.0.1:8000"}); st != 409 {
		t.Fatalf("duplicate target: %d", st)
	}
	if st, _ := call(t, f, "GET", "/targets", nil); st != 404 {
		t.Fatalf("GET /targets: %d", st)
	}
	up, _ := f.Find("upstreams", "u1.internal")
	hc := up["healthchecks"].(map[string]any)["active"].(map[string]any)
	if hc["http_path"] != "/" || hc["concurrency"] != 10.0 || len(hc["unhealthy"].(map[string]any)["http_statuses"].([]any)) != 8 {
		t.Fatalf("healthcheck defaults: %v", hc)
	}
}

func TestPaginationAndTags(t *testing.T) {
	f := New(Options{})
	for i := 0; i < 25; i++ {
		tags := []string{"all"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		if i%3 == 0 {
			tags = append(tags, "three")
		}
		if st, b := call(t, f, "POST", "/services", map[string]any{"name": fmt.Sprintf("s%02d", i), "host": "h.internal", "tags": tags}); st != 201 {
			t.Fatalf("%d %v", st, b)
		}
	}
	seen := map[string]bool{}
	path := "/services?size=10&tags=all"
	pages := 0
	for path != "" {
		st, b := call(t, f, "GET", path, nil)
		if st != 200 {
			t.Fatalf("%s: %d %v", path, st, b)
		}
		pages++
		for _, e := range b["data"].([]any) {
			seen[e.(map[string]any)["name"].(string)] = true
		}
		path = ""
		if n, ok := b["next"].(string); ok {
			path = n
			if b["offset"] == nil {
				t.Fatal("next without offset")
			}
		}
	}
	if pages != 3 || len(seen) != 25 {
		t.Fatalf("pages %d seen %d", pages, len(seen))
	}
	_, b := call(t, f, "GET", "/services?tags=even,three", nil)
	if n := len(b["data"].([]any)); n != 5 { // 0 6 12 18 24
		t.Fatalf("AND: %d", n)
	}
	_, b = call(t, f, "GET", "/services?tags=even/three", nil)
	if n := len(b["data"].([]any)); n != 17 { // 13 even + 0..24 step 3 odd (3 9 15 21)
		t.Fatalf("OR: %d", n)
	}
	if st, b := call(t, f, "GET", "/services?size=1001", nil); st != 400 || b["code"] != 9.0 {
		t.Fatalf("size: %d %v", st, b)
	}
	_, b = call(t, f, "GET", "/tags/three?size=1000", nil)
	if n := len(b["data"].([]any)); n != 9 || b["data"].([]any)[0].(map[string]any)["entity_name"] != "services" {
		t.Fatalf("/tags: %v", b)
	}
}

func TestDBLessLikeKong(t *testing.T) {
	f := New(Options{DBLess: true})
	for _, c := range []struct{ method, path, op string }{
		{"POST", "/plugins", "create"}, {"PUT", "/services/x", "create or update"}, {"DELETE", "/services/x", "remove"},
	} {
		st, b := call(t, f, c.method, c.path, map[string]any{"name": "x"})
		kind := strings.Split(c.path, "/")[1]
		if st != http.StatusMethodNotAllowed || b["code"] != 12.0 || b["message"] != "cannot "+c.op+" '"+kind+"' entities when not using a database" {
			t.Fatalf("%s %s: %d %v", c.method, c.path, st, b)
		}
	}
	cfg := `_format_version: "3.0"
services:
- name: a
  url: http://a.internal
  routes:
  - name: ra
    paths: [/a]
  plugins:
  - name: response-transformer
upstreams:
- name: u.internal
  targets:
  - target: 10.0.0.1:80
`
	st, b := call(t, f, "POST", "/config", map[string]any{"config": cfg})
	if st != 201 || len(b["services"].(map[string]any)) != 1 || len(b["targets"].(map[string]any)) != 1 {
		t.Fatalf("%d %v", st, b)
	}
	if _, ok := f.Find("routes", "ra"); !ok {
		t.Fatal("nested route not loaded")
	}
	_, status := call(t, f, "GET", "/status", nil)
	if h := status["configuration_hash"].(string); h == strings.Repeat("0", 32) || len(h) != 32 {
		t.Fatalf("hash %q", h)
	}
	st, b = call(t, f, "POST", "/config", map[string]any{"_format_version": "3.0", "services": []any{map[string]any{"name": "b", "port": 70000}}})
	if st != 400 || b["code"] != 14.0 || b["name"] != "invalid declarative configuration" {
		t.Fatalf("%d %v", st, b)
	}
	errs := b["fields"].(map[string]any)["services"].([]any)[0].(map[string]any)
	if errs["port"] != "value should be between 0 and 65535" || errs["host"] != "required field missing" {
		t.Fatalf("fields %v", errs)
	}
	if _, ok := f.Find("routes", "ra"); !ok {
		t.Fatal("a refused config replaced the current one")
	}
}

func TestPluginSchemaValidation(t *testing.T) {
	f := New(Options{Plugins: map[string]PluginSchema{"service-registry": fakeSchema{}}})
	st, b := call(t, f, "POST", "/plugins", map[string]any{"name": "service-registry", "config": map[string]any{"registry": "bogus"}})
	if st != 400 || b["fields"].(map[string]any)["config"].(map[string]any)["registry"] != "expected one of: kong, redis" {
		t.Fatalf("%d %v", st, b)
	}
	st, b = call(t, f, "POST", "/plugins", map[string]any{"name": "service-registry", "config": map[string]any{}})
	if st != 201 || b["config"].(map[string]any)["registry"] != "kong" {
		t.Fatalf("%d %v", st, b)
	}
	if st, b := call(t, f, "POST", "/plugins", map[string]any{"name": "service-registry"}); st != 409 || b["code"] != 5.0 {
		t.Fatalf("second global instance: %d %v", st, b)
	}
}

// fakeSchema stands in for kongschema in this package's unit tests.
type fakeSchema struct{}

func (fakeSchema) Validate(c map[string]any) (map[string]any, map[string]any) {
	out := map[string]any{"registry": "kong"}
	if r, ok := c["registry"]; ok {
		if r != "kong" && r != "redis" {
			return nil, map[string]any{"registry": "expected one of: kong, redis"}
		}
		out["registry"] = r
	}
	return out, nil
}

// The seed's exact call, `POST /plugins name=service-registry
// config.registry=kong` (form-encoded, as curl -d or httpie --form send it),
// is accepted with the plugin's real schema and its defaults filled in.
func TestSeedPluginCallWithRealSchema(t *testing.T) {
	schema := RegistrySchema(t)
	if schema == nil {
		t.Fatal("kong/schemas/service-registry.json is missing: run `make schema`")
	}
	f := New(Options{Plugins: map[string]PluginSchema{"service-registry": schema}})
	req := httptest.NewRequest("POST", "/plugins", strings.NewReader("name=service-registry&config.registry=kong"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)
	var b map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &b)
	if w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	cfg := b["config"].(map[string]any)
	if cfg["registry"] != "kong" || cfg["cache_ttl_ms"] != 1000.0 {
		t.Fatalf("config %v", cfg)
	}
	st, sch := call(t, f, "GET", "/schemas/plugins/service-registry", nil)
	if st != 200 || !strings.Contains(fmt.Sprint(sch["fields"]), "required:true") {
		t.Fatalf("plugin schema: %d %v", st, sch)
	}
	st, body := call(t, f, "POST", "/services", map[string]any{"name": "s", "host": "h.internal"})
	if st != 201 {
		t.Fatal(body)
	}
	st, body = call(t, f, "POST", "/services/s/plugins", map[string]any{"name": "service-registry", "config": map[string]any{"registry": "bogus", "redis": map[string]any{"port": 70000}}})
	if st != 400 || body["code"] != 2.0 {
		t.Fatalf("%d %v", st, body)
	}
	fields := body["fields"].(map[string]any)["config"].(map[string]any)
	if fields["registry"] != "expected one of: kong, redis" || fields["redis"].(map[string]any)["port"] != "value should be between 1 and 65535" {
		t.Fatalf("fields %v", fields)
	}
}

// TestNonNormalizedPathsRefusedLikeKong: Kong 3.9 refuses a route path that
// differs from normalize(path, true) (kong/db/schema/typedefs.lua).
