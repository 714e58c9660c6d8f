package adminsvc_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// --metrics-listen serves /metrics without the API key and nothing else;
// /metrics on the API listener stays behind the key.
func TestMetricsListener(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	mport := redistest.FreePort(t)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{
		"SR_API_KEYS": "k1", "SR_METRICS_LISTEN": fmt.Sprintf("127.0.0.1:%d", mport)}})
	murl := fmt.Sprintf("http://127.0.0.1:%d", mport)
	if r := s.do("POST", "/register", `{"host":"m.example.com","path":"/","backend":"http://10.0.0.1:80"}`, "X-API-Key", "k1"); r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/metrics", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("/metrics on the API listener without key: %d", r.Status)
	}
	var body string
	waitFor(t, 10*time.Second, "the metrics listener", func() bool {
		resp, err := http.Get(murl + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == 200
	})
	for _, want := range []string{"sr_registrations_total 1", "sr_registered_routes 1", "sr_pending_changes ", "sr_event_streams 0",
		`sr_kong_sync_duration_seconds_count{result="ok"}`, `sr_http_requests_total{code="200",method="POST"} 1`,
		"go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics listener lacks %q", want)
		}
	}
	for _, p := range []string{"/routes", "/health", "/ui/", "/"} {
		resp, err := http.Get(murl + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("metrics listener answers %s with %d, want 404", p, resp.StatusCode)
		}
	}
}
