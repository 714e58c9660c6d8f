package adminsvc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// TestContractGoProxyAPI covers CONTRACT §1 row by row.
func TestContractGoProxyAPI(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()})

	reg := `{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000","options":{"timeout":"60s","websocket":true}}`

	// POST /register → 200 {"status":"registered","host","path","backend"}.
	r := s.do("POST", "/register", reg)
	if r.Status != 200 || r.Raw != `{"status":"registered","host":"api.example.com","path":"/v2","backend":"http://api-v2:9000"}`+"\n" {
		t.Fatalf("register: %d %q", r.Status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	first := s.do("GET", "/routes", "").Body["routes"].([]any)[0].(map[string]any)["registered_at"]

	// Same host+path+backend+options again (other key order) → 200, same
	// body, registered_at unchanged.
	time.Sleep(1100 * time.Millisecond) // registered_at has second precision: make a change visible
	again := s.do("POST", "/register", `{"options":{"websocket":true,"timeout":"60s"},"backend":"http://api-v2:9000","path":"/v2","host":"api.example.com"}`)
	if again.Status != 200 || again.Raw != r.Raw {
		t.Fatalf("idempotent register: %d %q", again.Status, again.Raw)
	}
	if now := s.do("GET", "/routes", "").Body["routes"].([]any)[0].(map[string]any)["registered_at"]; now != first {
		t.Fatalf("registered_at changed: %v → %v", first, now)
	}

	// Same host+path, other backend or other options → 409.
	for _, body := range []string{
		`{"host":"api.example.com","path":"/v2","backend":"http://api-v3:9000","options":{"timeout":"60s","websocket":true}}`,
		`{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000","options":{"timeout":"30s"}}`,
	} {
		// The error is the contract's; "registered" (added) says what is.
		r := s.do("POST", "/register", body)
		reg, _ := r.Body["registered"].(map[string]any)
		if r.Status != 409 || r.Body["error"] != "route already exists" || reg["backend"] != "http://api-v2:9000" {
			t.Fatalf("conflict: %d %q", r.Status, r.Raw)
		}
	}

	// GET /routes: order host, then path; registered_at RFC 3339 UTC.
	for _, b := range []string{
		`{"host":"b.example.com","path":"/z","backend":"http://b:1"}`,
		`{"host":"a.example.com","path":"/y","backend":"https://a"}`,
		`{"host":"a.example.com","path":"/x","backend":"ws://a:8080/sock"}`,
		`{"host":"*.example.com","path":"/","backend":"wss://all"}`,
	} {
		if r := s.do("POST", "/register", b); r.Status != 200 {
			t.Fatalf("register %s: %d %s", b, r.Status, r.Raw)
		}
	}
	r = s.do("GET", "/routes", "")
	if r.Status != 200 || r.Body["total"] != 5.0 {
		t.Fatalf("routes: %d %s", r.Status, r.Raw)
	}
	var order []string
	for _, x := range r.Body["routes"].([]any) {
		m := x.(map[string]any)
		order = append(order, m["host"].(string)+m["path"].(string))
		ts, err := time.Parse(time.RFC3339, m["registered_at"].(string))
		if err != nil || !strings.HasSuffix(m["registered_at"].(string), "Z") || time.Since(ts) > time.Minute {
			t.Fatalf("registered_at %v: %v", m["registered_at"], err)
		}
		for _, k := range []string{"host", "path", "backend", "registered_at"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("route lacks %s: %v", k, m)
			}
		}
	}
	if strings.Join(order, " ") != "*.example.com/ a.example.com/x a.example.com/y api.example.com/v2 b.example.com/z" {
		t.Fatalf("order: %v", order)
	}

	// GET /health → 200 {"status":"healthy","registered_routes":N}.
	if r := s.do("GET", "/health", ""); r.Status != 200 || r.Body["status"] != "healthy" || r.Body["registered_routes"] != 5.0 {
		t.Fatalf("health: %d %s", r.Status, r.Raw)
	}

	// POST /deregister → 200; again → 404 route not found.
	r = s.do("POST", "/deregister", `{"host":"api.example.com","path":"/v2"}`)
	if r.Status != 200 || r.Raw != `{"status":"deregistered","host":"api.example.com","path":"/v2"}`+"\n" {
		t.Fatalf("deregister: %d %q", r.Status, r.Raw)
	}
	if r := s.do("POST", "/deregister", `{"host":"api.example.com","path":"/v2"}`); r.Status != 404 || r.Raw != `{"error":"route not found"}`+"\n" {
		t.Fatalf("deregister missing: %d %q", r.Status, r.Raw)
	}

	// Bad bodies: 400 / 413 with a message saying what is wrong.
	bad := map[string]string{
		`not json`: "body is not valid json",
		``:         "body is not valid json",
		`[1,2]`:    "body must be a json object",
		`{"host":5,"path":"/","backend":"http://a"}`:                     "host: expected a string",
		`{"host":"a.com","path":["/"],"backend":"http://a"}`:             "path: expected a string",
		`{"path":"/","backend":"http://a"}`:                              "host: required",
		`{"host":"a.com","path":"/","backend":"http://a","options":"x"}`: "options: expected an object",
		// invalid fields, named
		`{"host":"not a host","path":"/","backend":"http://a"}`:                                             `host: invalid hostname "not a host"`,
		`{"host":"a..com","path":"/","backend":"http://a"}`:                                                 `host: invalid hostname "a..com"`,
		`{"host":"10.0.0.1","path":"/","backend":"http://a"}`:                                               "host: must be a hostname, not an ip address",
		`{"host":"a.*.com","path":"/","backend":"http://a"}`:                                                `host: invalid hostname "a.*.com"`,
		`{"host":"a.com","path":"v2","backend":"http://a"}`:                                                 "path: must start with /",
		`{"host":"a.com","path":"/","backend":"api:9000"}`:                                                  "backend: must be an absolute http, https, ws or wss url",
		`{"host":"a.com","path":"/","backend":"ftp://a"}`:                                                   `backend: scheme "ftp" not supported (http, https, ws, wss)`,
		`{"host":"a.com","path":"/","backend":"/relative"}`:                                                 "backend: must be an absolute http, https, ws or wss url",
		`{"host":"a.com","path":"/","backend":"http://a","options":{"timeout":"6o"}}`:                       `options.timeout: invalid duration "6o"`,
		`{"host":"a.com","path":"/","backend":"http://a","options":{"rate_limit":{"requests_per_min":-1}}}`: "options.rate_limit.requests_per_min: must not be negative",
		`{"host":"a.com","path":"/","backend":"http://a","options":{"retry":{"max_attempts":-2}}}`:          "options.retry.max_attempts: must not be negative",
		`{"host":"a.com","path":"/","backend":"http://a","options":{"headers":{"X-A":"1\r\nX-B: 2"}}}`:      "options.headers.X-A: header value must not contain CR, LF or NUL",
		`{"host":"a.com","path":"/","backend":"http://a","options":{"circuit_breaker":{"timeout":"soon"}}}`: `options.circuit_breaker.timeout: invalid duration "soon"`,
		`{"host":"a.com","path":"/","backend":"http://a","options":{"health_check_interval":"-5s"}}`:        "options.health_check_interval: must not be negative",
	}
	for body, want := range bad {
		r := s.do("POST", "/register", body)
		if r.Status != 400 || r.Body["error"] != want {
			t.Errorf("%s: %d %q, want 400 %q", body, r.Status, r.Raw, want)
		}
	}
	big := `{"host":"a.com","path":"/","backend":"http://a","options":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`
	if r := s.do("POST", "/register", big); r.Status != 413 || !strings.Contains(r.Body["error"].(string), "too large") {
		t.Fatalf("1 MiB limit: %d %s", r.Status, r.Raw)
	}
	// Just under the body limit, unknown options are still bounded (4 KiB):
	// they are stored verbatim and returned by every listing (issue 13).
	under := `{"host":"big.example.com","path":"/","backend":"http://a","options":{"x":"` + strings.Repeat("a", 1<<20-200) + `"}}`
	if r := s.do("POST", "/register", under); r.Status != 400 || !strings.HasPrefix(r.Body["error"].(string), "options: unknown options take ") {
		t.Fatalf("under the body limit: %d %.200s", r.Status, r.Raw)
	}
	// Unknown option names are kept, returned and logged once.
	s.do("POST", "/register", `{"host":"opt.example.com","path":"/","backend":"http://a","options":{"sticky":true,"timeout":"5s"}}`)
	found := false
	for _, x := range s.do("GET", "/routes", "").Body["routes"].([]any) {
		m := x.(map[string]any)
		if m["host"] == "opt.example.com" {
			found = m["options"].(map[string]any)["sticky"] == true
		}
	}
	if !found {
		t.Fatal("unknown option not returned")
	}
	waitFor(t, 5*time.Second, "unknown option logged", func() bool {
		return strings.Count(s.Logs.String(), `"option":"sticky"`) == 1
	})
	// Unknown paths and methods keep the error shape.
	if r := s.do("GET", "/nope", ""); r.Status != 404 || r.Body["error"] != "not found" {
		t.Fatalf("404: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/register", ""); r.Status != 405 || r.Body["error"] != "method not allowed" {
		t.Fatalf("405: %d %s", r.Status, r.Raw)
	}
}

// TestContractAPIKeys: with keys configured a missing or wrong key is 401;
// Bearer and X-API-Key both work; /health stays open; the key is never
// logged.
func TestContractAPIKeys(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_API_KEYS": "s3cret-key-1,other-key-2"}})
	body := `{"host":"k.example.com","path":"/","backend":"http://k:1"}`
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"X-API-Key", "s3cret-key-"}, {"Authorization", "Basic s3cret-key-1"}} {
		if r := s.do("POST", "/register", body, h...); r.Status != 401 || r.Raw != `{"error":"unauthorized"}`+"\n" {
			t.Fatalf("%v: %d %s", h, r.Status, r.Raw)
		}
	}
	if r := s.do("POST", "/register", body, "Authorization", "Bearer s3cret-key-1"); r.Status != 200 {
		t.Fatalf("bearer: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/routes", "", "X-API-Key", "other-key-2"); r.Status != 200 || r.Body["total"] != 1.0 {
		t.Fatalf("x-api-key: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/health", ""); r.Status != 200 {
		t.Fatalf("health with keys: %d", r.Status)
	}
	if strings.Contains(s.Logs.String(), "s3cret") {
		t.Fatal("api key in logs")
	}
	if strings.Contains(s.Logs.String(), "registry API is open") {
		t.Fatal("open-API warning logged although keys are set")
	}
}

// TestContractOpenWarningAndRateLimit: no keys → a warning at start; the
// per-client rate limit answers 429 with Retry-After.
func TestContractOpenWarningAndRateLimit(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_RATE_LIMIT": "5"}})
	if !strings.Contains(s.Logs.String(), "registry API is open") {
		t.Fatalf("no open-API warning:\n%s", s.Logs.String())
	}
	limited := 0
	for i := 0; i < 10; i++ {
		r := s.do("GET", "/routes", "")
		if r.Status == 429 {
			limited++
			if r.Body["error"] != "rate limit exceeded" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("429 shape: %s %v", r.Raw, r.Header)
			}
		}
	}
	if limited < 4 {
		t.Fatalf("only %d of 10 requests limited at 5/min", limited)
	}
	if r := s.do("GET", "/health", ""); r.Status != 200 {
		t.Fatal("health rate limited")
	}
}

// TestContractStoreUnavailable: Redis down → 503 "registry store
// unavailable", /health 503, nothing half-written once it is back.
func TestContractStoreUnavailable(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	s := startSvc(t, svcOpts{Redis: rs.URL()})
	if r := s.do("POST", "/register", `{"host":"a.example.com","path":"/","backend":"http://a:1"}`); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	rs.Stop()
	r := s.do("POST", "/register", `{"host":"b.example.com","path":"/","backend":"http://b:1"}`)
	if r.Status != 503 || r.Raw != `{"error":"registry store unavailable"}`+"\n" {
		t.Fatalf("register with redis down: %d %s", r.Status, r.Raw)
	}
	if r := s.do("POST", "/deregister", `{"host":"a.example.com","path":"/"}`); r.Status != 503 {
		t.Fatalf("deregister with redis down: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/routes", ""); r.Status != 503 || r.Body["error"] != "registry store unavailable" {
		t.Fatalf("routes with redis down: %d %s", r.Status, r.Raw)
	}
	r = s.do("GET", "/health", "")
	if r.Status != 503 || r.Body["status"] != "unhealthy" || r.Body["error"] != "registry store unavailable" {
		t.Fatalf("health with redis down: %d %s", r.Status, r.Raw)
	}
	rs.Restart()
	waitFor(t, 10*time.Second, "health back", func() bool { return s.do("GET", "/health", "").Status == 200 })
	r = s.do("GET", "/routes", "")
	if r.Body["total"] != 1.0 || !strings.Contains(r.Raw, "a.example.com") || strings.Contains(r.Raw, "b.example.com") {
		t.Fatalf("after redis came back: %s", r.Raw)
	}
}

// TestContractKongUnreachable: registrations succeed with Kong down and
// /health counts what is pending.
func TestContractKongUnreachable(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()}) // Kong URL: a closed port
	for _, p := range []string{"/a", "/b"} {
		if r := s.do("POST", "/register", `{"host":"a.example.com","path":"`+p+`","backend":"http://a:1"}`); r.Status != 200 {
			t.Fatalf("register with kong down: %d %s", r.Status, r.Raw)
		}
	}
	r := s.do("GET", "/health", "")
	if r.Status != 200 || r.Body["status"] != "healthy" || r.Body["pending_changes"].(float64) < 2 {
		t.Fatalf("health with kong down: %d %s", r.Status, r.Raw)
	}
	waitFor(t, 10*time.Second, "kong outage logged", func() bool {
		return strings.Contains(s.Logs.String(), "kong reconcile failed")
	})
}
