package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

func TestMain(m *testing.M) {
	redistest.SilenceClientLogs() // the store-down cases would fill the output
	os.Exit(m.Run())
}

// fakeSync stands in for the Kong reconciler: the API only nudges it and
// reads its state.
type fakeSync struct {
	triggers atomic.Int64
	pending  int64
	stats    kongsync.Stats
	status   kongsync.Status
}

func (f *fakeSync) Trigger()                               { f.triggers.Add(1) }
func (f *fakeSync) Pending(context.Context) (int64, error) { return f.pending, nil }
func (f *fakeSync) Stats() kongsync.Stats                  { return f.stats }
func (f *fakeSync) Status() kongsync.Status                { return f.status }

type testAPI struct {
	srv   *Server
	sync  *fakeSync
	redis *redistest.Server
}

// newTestAPI is the API over a real redis-server and a fake Kong sync.
func newTestAPI(t *testing.T, mod func(*Config)) *testAPI {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	fs := &fakeSync{}
	cfg := Config{Store: registry.NewStore(rdb, registry.Options{Prefix: "sr"}), Redis: rdb, Sync: fs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &testAPI{srv: srv, sync: fs, redis: rs}
}

// do sends one request through the whole stack (middleware, router,
// error handler) and returns the recorded response.
func (a *testAPI) do(method, target, body string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	rec := httptest.NewRecorder()
	a.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return m
}

func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body.String())
	}
	if got := decode(t, rec)["error"]; got != msg {
		t.Fatalf("error %q, want %q", got, msg)
	}
}

func TestRegisterHandler(t *testing.T) {
	a := newTestAPI(t, nil)
	body := `{"host":"API.example.com","path":"/v2","backend":"http://api-v2:9000","options":{"timeout":"60s"}}`
	rec := a.do(http.MethodPost, "/register", body)
	if rec.Code != http.StatusOK {
		t.Fatalf("register: %d %s", rec.Code, rec.Body.String())
	}
	got := decode(t, rec)
	want := map[string]any{"status": "registered", "host": "api.example.com", "path": "/v2", "backend": "http://api-v2:9000"}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v (%v)", k, got[k], v, got)
		}
	}
	if a.sync.triggers.Load() != 1 {
		t.Fatalf("a new registration nudges the sync once, got %d", a.sync.triggers.Load())
	}
	// The same registration again is idempotent and does not nudge Kong.
	if rec := a.do(http.MethodPost, "/register", body); rec.Code != http.StatusOK || a.sync.triggers.Load() != 1 {
		t.Fatalf("idempotent register: %d %s, %d triggers", rec.Code, rec.Body.String(), a.sync.triggers.Load())
	}
	wantError(t, a.do(http.MethodPost, "/register", `{"host":"api.example.com","path":"/v2","backend":"http://other:1"}`),
		http.StatusConflict, "route already exists")
}

func TestRegisterHandlerRefusesBadInput(t *testing.T) {
	a := newTestAPI(t, func(c *Config) { c.BodyLimit = 256 })
	for _, c := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{"host":"a.example","path":"/x"`, 400, "body is not valid json"},
		{`[]`, 400, "body must be a json object"},
		{`{"path":"/x","backend":"http://b:1"}`, 400, "host: required"},
		{`{"host":5,"path":"/x","backend":"http://b:1"}`, 400, "host: expected a string"},
		{`{"host":"1.2.3.4","path":"/x","backend":"http://b:1"}`, 400, "host: must be a hostname, not an ip address"},
		{`{"host":"a.example","path":"x","backend":"http://b:1"}`, 400, "path: must start with /"},
		{`{"host":"a.example","path":"/x","backend":"ftp://b:1"}`, 400, `backend: scheme "ftp" not supported (http, https, ws, wss)`},
		{`{"host":"a.example","path":"/x","backend":"http://b:1","options":{"timeout":"6o"}}`, 400, `options.timeout: invalid duration "6o"`},
		{`{"host":"a.example","path":"/x","backend":"http://b:1","pad":"` + strings.Repeat("x", 300) + `"}`, 413, "request body too large (limit 256 bytes)"},
	} {
		wantError(t, a.do(http.MethodPost, "/register", c.body), c.status, c.msg)
	}
	if a.sync.triggers.Load() != 0 {
		t.Fatal("a refused registration nudged the sync")
	}
}

func TestDeregisterAndListRoutesHandlers(t *testing.T) {
	a := newTestAPI(t, nil)
	wantError(t, a.do(http.MethodPost, "/deregister", `{"host":"a.example","path":"/x"}`), http.StatusNotFound, "route not found")
	for _, b := range []string{
		`{"host":"b.example","path":"/y","backend":"http://b:1"}`,
		`{"host":"a.example","path":"/z","backend":"http://a:1"}`,
		`{"host":"a.example","path":"/x","backend":"http://a:2"}`,
	} {
		if rec := a.do(http.MethodPost, "/register", b); rec.Code != http.StatusOK {
			t.Fatalf("register %s: %d %s", b, rec.Code, rec.Body.String())
		}
	}
	rec := a.do(http.MethodGet, "/routes", "")
	var list struct {
		Routes []routeJSON `json:"routes"`
		Total  int         `json:"total"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != 200 {
		t.Fatalf("routes: %d %s %v", rec.Code, rec.Body.String(), err)
	}
	var order []string
	for _, r := range list.Routes {
		order = append(order, r.Host+r.Path)
	}
	if list.Total != 3 || strings.Join(order, " ") != "a.example/x a.example/z b.example/y" {
		t.Fatalf("routes ordered by host then path, total 3: %v %d", order, list.Total)
	}
	rec = a.do(http.MethodPost, "/deregister", `{"host":"A.example","path":"/x"}`)
	if got := decode(t, rec); rec.Code != 200 || got["status"] != "deregistered" || got["host"] != "a.example" {
		t.Fatalf("deregister: %d %v", rec.Code, got)
	}
}

func TestHealthHandler(t *testing.T) {
	a := newTestAPI(t, nil)
	a.sync.pending = 2
	a.sync.stats = kongsync.Stats{Leader: true, LastError: "kong: connection refused"}
	rec := a.do(http.MethodGet, "/health", "")
	got := decode(t, rec)
	if rec.Code != 200 || got["registered_routes"] != 0.0 || got["pending_changes"] != 2.0 {
		t.Fatalf("health: %d %v", rec.Code, got)
	}
	a.redis.Stop()
	rec = a.do(http.MethodGet, "/health", "")
	if got := decode(t, rec); rec.Code != 503 || got["status"] != "unhealthy" || got["error"] != "registry store unavailable" {
		t.Fatalf("health with the store down: %d %v", rec.Code, got)
	}
	wantError(t, a.do(http.MethodPost, "/register", `{"host":"a.example","path":"/x","backend":"http://b:1"}`),
		http.StatusServiceUnavailable, "registry store unavailable")
}

// TestErrorHandlerShape: every error, Echo's own included, is the
// contract's {"error": "<lowercase>"}; a HEAD gets the status only.
func TestErrorHandlerShape(t *testing.T) {
	a := newTestAPI(t, func(c *Config) { c.APIKeys = []string{"k"} })
	wantError(t, a.do(http.MethodGet, "/routes", ""), http.StatusUnauthorized, "unauthorized")
	rec := a.do(http.MethodHead, "/routes", "")
	if rec.Code != http.StatusUnauthorized || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %q", rec.Code, rec.Body.String())
	}
	open := newTestAPI(t, nil)
	wantError(t, open.do(http.MethodGet, "/nowhere", ""), http.StatusNotFound, "not found")
	wantError(t, open.do(http.MethodDelete, "/routes", ""), http.StatusMethodNotAllowed, "method not allowed")
}

// TestHandlerErrorsAreHTTPErrors calls handlers directly, Echo's httptest
// way: a refusal is an *echo.HTTPError, a store failure keeps its cause in
// Internal, and the central handler turns either into the contract shape.
func TestHandlerErrorsAreHTTPErrors(t *testing.T) {
	a := newTestAPI(t, nil)
	e := a.srv.e
	req := httptest.NewRequest(http.MethodGet, "/v1/services/nope", nil)
	rec := httptest.NewRecorder()
	c := e.NewContext(req, rec)
	c.SetParamNames("name")
	c.SetParamValues("nope")
	err := a.srv.getService(c)
	var he *echo.HTTPError
	if !errors.As(err, &he) || he.Code != http.StatusNotFound || he.Message != message("service not found") {
		t.Fatalf("getService of a missing service: %#v", err)
	}
	a.redis.Stop()
	err = a.srv.getService(c)
	he = toHTTPError(err)
	if he.Code != http.StatusServiceUnavailable || !errors.Is(he.Internal, registry.ErrUnavailable) {
		t.Fatalf("store down: %d %v (internal %v)", he.Code, he.Message, he.Internal)
	}
	a.srv.handleError(err, c)
	wantError(t, rec, http.StatusServiceUnavailable, "registry store unavailable")
}

func TestRecovererAnswers500(t *testing.T) {
	a := newTestAPI(t, nil)
	a.srv.e.GET("/boom", func(echo.Context) error { panic("boom") })
	wantError(t, a.do(http.MethodGet, "/boom", ""), http.StatusInternalServerError, "internal error")
}

func TestInstanceHandlers(t *testing.T) {
	a := newTestAPI(t, nil)
	wantError(t, a.do(http.MethodPut, "/v1/services/svc/instances/i1", `{"address":"10.0.0.1:80","weight":-1}`),
		http.StatusBadRequest, fmt.Sprintf("weight: must be between 0 and %d", registry.MaxWeight))
	wantError(t, a.do(http.MethodPut, "/v1/services/svc/instances/i1", `{"address":"10.0.0.1:80","colour":"red"}`),
		http.StatusBadRequest, `unknown field "colour"`)
	rec := a.do(http.MethodPut, "/v1/services/svc/instances/i1", `{"address":"10.0.0.1:80","weight":10}`)
	if got := decode(t, rec); rec.Code != 200 || got["address"] != "10.0.0.1:80" || got["weight"] != 10.0 {
		t.Fatalf("put instance: %d %v", rec.Code, got)
	}
	rec = a.do(http.MethodGet, "/v1/services/svc", "")
	if got := decode(t, rec); rec.Code != 200 || got["name"] != "svc" {
		t.Fatalf("get service: %d %v", rec.Code, got)
	}
	wantError(t, a.do(http.MethodDelete, "/v1/services/svc/instances/i2", ""), http.StatusNotFound, "instance not found")
	wantError(t, a.do(http.MethodGet, "/v1/services/_index", ""), http.StatusBadRequest, "name: must not start with '_' (reserved)")
}

// TestDeleteService (issue 13 defect 10): a /v1 service can be deleted
// (a typo'd one stayed forever); a route's service goes with its route.
func TestDeleteService(t *testing.T) {
	a := newTestAPI(t, nil)
	if rec := a.do(http.MethodPut, "/v1/services/tpyo/instances/i", `{"address":"10.0.0.1:80"}`); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	if rec := a.do(http.MethodPut, "/v1/services/tpyo/tags", `{"tags":["x"]}`); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	before := a.sync.triggers.Load()
	rec := a.do(http.MethodDelete, "/v1/services/tpyo", "")
	if got := decode(t, rec); rec.Code != 200 || got["status"] != "deleted" || a.sync.triggers.Load() != before+1 {
		t.Fatalf("delete: %d %v", rec.Code, got)
	}
	wantError(t, a.do(http.MethodGet, "/v1/services/tpyo", ""), http.StatusNotFound, "service not found")
	if got := decode(t, a.do(http.MethodGet, "/v1/services", "")); got["total"] != 0.0 {
		t.Fatalf("listed after delete: %v", got)
	}
	wantError(t, a.do(http.MethodDelete, "/v1/services/tpyo", ""), http.StatusNotFound, "service not found")
	if rec := a.do(http.MethodPost, "/register", `{"host":"r.example","path":"/","backend":"http://b:1"}`); rec.Code != 200 {
		t.Fatal(rec.Body.String())
	}
	name := registry.ServiceName("r.example", "/")
	wantError(t, a.do(http.MethodDelete, "/v1/services/"+name, ""), http.StatusConflict,
		"service belongs to a registered route: remove the route (POST /deregister)")
	if got := decode(t, a.do(http.MethodGet, "/routes", "")); got["total"] != 1.0 {
		t.Fatalf("the route went: %v", got)
	}
}
