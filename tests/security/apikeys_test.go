package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/tests/faults"
)

// Every endpoint but /health needs a key once keys are configured:
// mutating ones and reads alike. Keys come from SR_API_KEYS and the keys
// file, as X-API-Key or Authorization: Bearer; anything else is 401 with
// {"error":"unauthorized"} and changes nothing.
func TestAPIKeysOnEveryEndpoint(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("# ops\nfile-key-000111\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), Env: map[string]string{
		"SR_API_KEYS": " env-key-aaa , ,env-key-bbb", "SR_API_KEYS_FILE": file,
	}})
	u := a.URL
	reg := map[string]any{"host": "sec.test", "path": "/a", "backend": "http://10.0.0.1:80"}
	endpoints := []struct {
		method, path string
		body         any
	}{
		{"POST", "/register", reg},
		{"POST", "/deregister", map[string]any{"host": "sec.test", "path": "/zzz"}},
		{"GET", "/routes", nil},
		{"GET", "/metrics", nil},
		{"GET", "/v1/services", nil},
		{"GET", "/v1/services/orders", nil},
		{"GET", "/v1/openapi.json", nil},
		{"GET", "/v1/services/orders/health", nil},
		{"PUT", "/v1/services/orders/instances/i1", map[string]any{"address": "10.0.0.2:80", "weight": 1}},
		{"PATCH", "/v1/services/orders/instances/i1", map[string]any{"weight": 2}},
		{"POST", "/v1/services/orders/instances/i1/heartbeat", nil},
		{"POST", "/v1/services/orders/maintenance", map[string]any{"enabled": false}},
		{"PUT", "/v1/services/orders/tags", map[string]any{"tags": []string{"a"}}},
		{"DELETE", "/v1/services/orders/instances/i1", nil},
	}
	bad := [][]string{
		nil,
		{"X-API-Key", "wrong"},
		{"X-API-Key", ""},
		{"X-API-Key", "env-key-aa"}, // prefix
		{"Authorization", "Bearer"}, // no token
		{"Authorization", "Basic env-key-aaa"},
		{"Authorization", "Bearer wrong"},
		{"X-Api-Key", "ENV-KEY-AAA"}, // case matters
		{"X-API-Key", "# ops"},       // a comment line is not a key
	}
	tried := 0
	for _, ep := range endpoints {
		for _, h := range bad {
			r := call(t, ep.method, u+ep.path, ep.body, h...)
			tried++
			if r.Status != 401 || r.Body["error"] != "unauthorized" {
				t.Errorf("%s %s with %v: %d %s", ep.method, ep.path, h, r.Status, r.Raw)
			}
		}
	}
	// Nothing was written by the refused calls.
	if r := call(t, "GET", u+"/routes", nil, "X-API-Key", "env-key-bbb"); r.Status != 200 || r.Body["total"] != 0.0 {
		t.Fatalf("routes after refused calls: %d %s", r.Status, r.Raw)
	}
	good := [][]string{{"X-API-Key", "env-key-aaa"}, {"Authorization", "Bearer env-key-bbb"}, {"authorization", "bearer file-key-000111"}}
	for i, ep := range endpoints {
		h := good[i%len(good)]
		r := call(t, ep.method, u+ep.path, ep.body, h...)
		if r.Status == 401 {
			t.Errorf("%s %s with %v: 401", ep.method, ep.path, h)
		}
	}
	if r := call(t, "GET", u+"/health", nil); r.Status != 200 {
		t.Fatalf("/health must stay open for probes: %d", r.Status)
	}
	t.Logf("RESULT security=api-keys refused_calls=%d endpoints=%d", tried, len(endpoints))
	if strings.Contains(a.Log(), "env-key-") || strings.Contains(a.Log(), "file-key-") {
		t.Fatalf("an API key appears in the adminsvc log")
	}
}

// Without keys the API is open, and adminsvc says so at start.
func TestNoKeysWarns(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL()})
	if r := call(t, "GET", a.URL+"/routes", nil); r.Status != 200 {
		t.Fatalf("open API: %d", r.Status)
	}
	if l := strings.ToLower(a.Log()); !strings.Contains(l, "warn") || !strings.Contains(l, "key") {
		t.Fatalf("no warning about the open API in the log:\n%s", a.Log())
	}
}
