package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestRegisterSmallDefects covers issue 13 defect 10's registration items.
func TestRegisterSmallDefects(t *testing.T) {
	a := newTestAPI(t, nil)
	reg := func(body string) (int, map[string]any) {
		rec := a.do(http.MethodPost, "/register", body)
		return rec.Code, decode(t, rec)
	}
	// Unknown top-level fields are refused, naming the field (was: dropped).
	if code, body := reg(`{"host":"a.example","path":"/","backend":"http://o:1","ttl":30}`); code != 400 || body["error"] != `unknown field "ttl"` {
		t.Fatalf("ttl: %d %v", code, body)
	}
	if code, body := reg(`{"host":"a.example","path":"/","backend":"http://o:1/","options":{"timeout":"1m"}}`); code != 200 || body["backend"] != "http://o:1" {
		t.Fatalf("first: %d %v", code, body)
	}
	// Another spelling of the same registration is the idempotent 200.
	if code, body := reg(`{"host":"a.example","path":"/","backend":"HTTP://O:1","options":{"timeout":"60s"}}`); code != 200 || body["backend"] != "http://o:1" {
		t.Fatalf("same registration, other spelling: %d %v", code, body)
	}
	// A real conflict says what is registered.
	code, body := reg(`{"host":"a.example","path":"/","backend":"http://o:2"}`)
	registered, _ := body["registered"].(map[string]any)
	if code != 409 || body["error"] != "route already exists" || registered["backend"] != "http://o:1" ||
		registered["options"].(map[string]any)["timeout"] != "60s" || registered["registered_at"] == nil {
		t.Fatalf("conflict: %d %v", code, body)
	}
	// Unknown options are kept, within bounds.
	if code, body := reg(`{"host":"b.example","path":"/","backend":"http://o:1","options":{"future":"` + strings.Repeat("x", 5000) + `"}}`); code != 400 ||
		!strings.HasPrefix(body["error"].(string), "options: unknown options take ") {
		t.Fatalf("5 kB unknown option: %d %v", code, body)
	}
	if code, body := reg(`{"host":"b.example","path":"/","backend":"http://o:1","options":{"future":{"x":1}}}`); code != 200 {
		t.Fatalf("small unknown option: %d %v", code, body)
	}
	// /deregister tolerates a /register body, not other fields.
	if rec := a.do(http.MethodPost, "/deregister", `{"host":"b.example","path":"/","colour":1}`); rec.Code != 400 {
		t.Fatalf("deregister with an unknown field: %d %s", rec.Code, rec.Body.String())
	}
	if rec := a.do(http.MethodPost, "/deregister", `{"host":"b.example","path":"/","backend":"http://o:1"}`); rec.Code != 200 {
		t.Fatalf("deregister with the register body: %d %s", rec.Code, rec.Body.String())
	}
}

// TestInstanceWithoutLeaseHasNoExpiry: an instance without ttl_s has no
// expires_at (was "0001-01-01T00:00:00Z").
func TestInstanceWithoutLeaseHasNoExpiry(t *testing.T) {
	a := newTestAPI(t, nil)
	rec := a.do(http.MethodPut, "/v1/services/s/instances/i", `{"address":"10.0.0.1:80"}`)
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "expires_at") {
		t.Fatalf("put: %d %s", rec.Code, rec.Body.String())
	}
	rec = a.do(http.MethodGet, "/v1/services/s", "")
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "expires_at") {
		t.Fatalf("get: %d %s", rec.Code, rec.Body.String())
	}
}
