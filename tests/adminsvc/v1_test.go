package adminsvc_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/breaker"
	"github.com/kong-service-registry/service-registry/internal/redistest"
)

func TestV1Extensions(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL()})
	s.do("POST", "/register", `{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000"}`)
	name := "sr-api.example.com_v2"

	// Discovery by name: the route's backend is the first instance.
	r := s.do("GET", "/v1/services/"+name, "")
	if r.Status != 200 || r.Body["name"] != name || len(r.Body["instances"].([]any)) != 1 {
		t.Fatalf("get service: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/v1/services/sr-nope", ""); r.Status != 404 || r.Body["error"] != "service not found" {
		t.Fatalf("missing service: %d %s", r.Status, r.Raw)
	}

	// Canary: a second instance with a small weight, then more.
	r = s.do("PUT", "/v1/services/"+name+"/instances/green", `{"address":"10.0.0.7:9000","weight":10,"tags":["green"],"metadata":{"version":"2.1"}}`)
	if r.Status != 200 || r.Body["weight"] != 10.0 {
		t.Fatalf("put instance: %d %s", r.Status, r.Raw)
	}
	r = s.do("PATCH", "/v1/services/"+name+"/instances/green", `{"weight":50}`)
	if r.Status != 200 || r.Body["weight"] != 50.0 {
		t.Fatalf("patch instance: %d %s", r.Status, r.Raw)
	}
	waitFor(t, 10*time.Second, "canary target in kong with weight 50", func() bool {
		for _, tg := range k.List("targets") {
			if tg["target"] == "10.0.0.7:9000" && tg["weight"] == 50.0 {
				return true
			}
		}
		return false
	})
	for body, want := range map[string]string{
		`{"address":"nohost","weight":1}`:  "address: expected host:port",
		`{"address":"a:1","weight":70000}`: "weight: must be between 0 and 65535",
		`{"address":"a:1","weight":"x"}`:   "weight: expected an integer",
		`{"address":"a:1","ttl_s":-1}`:     "ttl_s: must not be negative",
		`{"address":"a:1","bogus":1}`:      `unknown field "bogus"`,
	} {
		if r := s.do("PUT", "/v1/services/"+name+"/instances/x", body); r.Status != 400 || r.Body["error"] != want {
			t.Errorf("%s: %d %s, want %q", body, r.Status, r.Raw, want)
		}
	}
	if r := s.do("PATCH", "/v1/services/"+name+"/instances/nope", `{"weight":1}`); r.Status != 404 || r.Body["error"] != "instance not found" {
		t.Fatalf("patch missing instance: %d %s", r.Status, r.Raw)
	}

	// A TTL instance expires unless renewed by heartbeats.
	r = s.do("PUT", "/v1/services/"+name+"/instances/lease", `{"address":"10.0.0.9:9000","ttl_s":2}`)
	if r.Status != 200 || r.Body["ttl_s"] != 2.0 || r.Body["expires_at"] == nil {
		t.Fatalf("put lease: %d %s", r.Status, r.Raw)
	}
	for i := 0; i < 3; i++ {
		time.Sleep(800 * time.Millisecond)
		if r := s.do("POST", "/v1/services/"+name+"/instances/lease/heartbeat", ""); r.Status != 200 {
			t.Fatalf("heartbeat: %d %s", r.Status, r.Raw)
		}
	}
	if !strings.Contains(s.do("GET", "/v1/services/"+name, "").Raw, `"lease"`) {
		t.Fatal("renewed lease expired")
	}
	waitFor(t, 10*time.Second, "unrenewed lease expired", func() bool {
		return !strings.Contains(s.do("GET", "/v1/services/"+name, "").Raw, `"lease"`)
	})

	// Tags and discovery by tags.
	if r := s.do("PUT", "/v1/services/"+name+"/tags", `{"tags":["team-a","prod"]}`); r.Status != 200 {
		t.Fatalf("tags: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/v1/services?tags=prod,team-a", ""); r.Body["total"] != 1.0 {
		t.Fatalf("by tags: %s", r.Raw)
	}
	if r := s.do("GET", "/v1/services?tags=prod,team-b", ""); r.Body["total"] != 0.0 {
		t.Fatalf("by tags (no match): %s", r.Raw)
	}

	// Maintenance and per-service health.
	if r := s.do("POST", "/v1/services/"+name+"/maintenance", `{"enabled":true,"message":"back soon"}`); r.Status != 200 {
		t.Fatalf("maintenance: %d %s", r.Status, r.Raw)
	}
	h := s.do("GET", "/v1/services/"+name+"/health", "")
	if h.Status != 200 || h.Body["status"] != "maintenance" || h.Body["maintenance"].(map[string]any)["message"] != "back soon" {
		t.Fatalf("health in maintenance: %s", h.Raw)
	}
	s.do("POST", "/v1/services/"+name+"/maintenance", `{"enabled":false}`)
	s.do("PATCH", "/v1/services/"+name+"/instances/green", `{"weight":0}`)
	rs.Client().HSet(t.Context(), breaker.Key("sr", name, "api-v2:9000"), "st", 1, "until", time.Now().Add(time.Hour).UnixMilli())
	h = s.do("GET", "/v1/services/"+name+"/health", "")
	insts := map[string]string{}
	for _, x := range h.Body["instances"].([]any) {
		m := x.(map[string]any)
		insts[m["id"].(string)] = m["status"].(string) + "/" + m["breaker"].(string)
	}
	if insts["green"] != "draining/closed" || insts["api-v2:9000"] != "healthy/open" || h.Body["status"] != "unhealthy" {
		t.Fatalf("health: %s", h.Raw)
	}
	if r := s.do("DELETE", "/v1/services/"+name+"/instances/green", ""); r.Status != 200 {
		t.Fatalf("delete instance: %d %s", r.Status, r.Raw)
	}
	if r := s.do("DELETE", "/v1/services/"+name+"/instances/green", ""); r.Status != 404 {
		t.Fatalf("delete instance twice: %d %s", r.Status, r.Raw)
	}

	// OpenAPI document and Prometheus metrics.
	o := s.do("GET", "/v1/openapi.json", "")
	if o.Status != 200 || o.Body["openapi"] != "3.0.3" {
		t.Fatalf("openapi: %d", o.Status)
	}
	for _, p := range []string{"/register", "/deregister", "/routes", "/health", "/v1/services/{name}/instances/{id}", "/v1/events"} {
		if _, ok := o.Body["paths"].(map[string]any)[p]; !ok {
			t.Errorf("openapi lacks %s", p)
		}
	}
	m := s.do("GET", "/metrics", "")
	for _, want := range []string{"sr_registrations_total 1", "sr_registered_routes 1", "sr_pending_changes ", "sr_reconcile_runs_total ", "sr_reconcile_errors_total ", "sr_reconcile_drift_fixed_total ", "sr_kong_request_duration_seconds_count ", `sr_http_requests_total{code="200",method="POST"}`} {
		if !strings.Contains(m.Raw, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestV1EventsStream(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/v1/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	s.do("POST", "/register", `{"host":"ev.example.com","path":"/","backend":"http://ev:1"}`)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "data: ") {
				var ev map[string]any
				if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &ev); err != nil || ev["service"] != "sr-ev.example.com_" {
					t.Fatalf("event %q: %v", l, err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no change event")
		}
	}
}

func TestCLIHelpMigrateImport(t *testing.T) {
	out, err := exec.Command(binPath, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"SR_LISTEN", `(default ":81")`, "SR_REDIS_URL", "redis://127.0.0.1:6379/0", "SR_KONG_ADMIN_URL", "http://127.0.0.1:8001",
		"SR_KONG_MODE", `(default "auto")`, "SR_KONG_BASE_CONFIG", "SR_API_KEYS", "SR_API_KEYS_FILE", "SR_RECONCILE_INTERVAL", "(default 30s)", "SR_PLUGIN_REDIS_HOST", "migrate up|status", "-no-migrate"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	// Secrets from the environment never show up as defaults in --help.
	cmd := exec.Command(binPath, "--help")
	cmd.Env = []string{"SR_API_KEYS=topsecret", "SR_REDIS_URL=redis://:pw123@h:6379/0"}
	out, _ = cmd.CombinedOutput()
	if strings.Contains(string(out), "topsecret") || strings.Contains(string(out), "pw123") {
		t.Fatal("--help shows secrets from the environment")
	}

	rs := redistest.Start(t, redistest.Options{})
	env := []string{"SR_REDIS_URL=" + rs.URL()}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(binPath, args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run("migrate", "status"); code != 0 || !strings.Contains(out, "keyspace version: 0") || !strings.Contains(out, "pending: 1") {
		t.Fatalf("migrate status: %d %s", code, out)
	}
	if out, code := run("migrate", "up"); code != 0 || !strings.Contains(out, "applied: 1") {
		t.Fatalf("migrate up: %d %s", code, out)
	}
	if out, code := run("migrate", "status"); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate status after up: %d %s", code, out)
	}

	// import loads a GET /routes dump (from another registry).
	dump := filepath.Join(t.TempDir(), "routes.json")
	os.WriteFile(dump, []byte(`{"routes":[
	 {"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080","registered_at":"2025-12-18T10:30:00Z"},
	 {"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000","options":{"timeout":"60s"},"registered_at":"2025-12-18T11:45:00Z"}],"total":2}`), 0o644)
	if out, code := run("import", dump); code != 0 || !strings.Contains(out, "2 routes: 2 created") {
		t.Fatalf("import: %d %s", code, out)
	}
	if out, code := run("import", dump); code != 0 || !strings.Contains(out, "0 created, 2 already present") {
		t.Fatalf("import again: %d %s", code, out)
	}
	// A dump that conflicts with what is there or holds invalid rows: the
	// good rows are imported, the rest reported, exit status 1.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`[{"host":"api.example.com","path":"/v1","backend":"http://elsewhere:1"},
	 {"host":"api.example.com","path":"v3","backend":"http://x:1"},
	 {"host":"new.example.com","path":"/","backend":"http://n:1"}]`), 0o644)
	if out, code := run("import", bad); code != 1 || !strings.Contains(out, "3 routes: 1 created, 0 already present, 1 conflicts, 1 invalid") {
		t.Fatalf("import with conflicts: %d %s", code, out)
	}
	s := startSvc(t, svcOpts{Redis: rs.URL()})
	if r := s.do("GET", "/routes", ""); r.Body["total"] != 3.0 || !strings.Contains(r.Raw, `"timeout":"60s"`) || !strings.Contains(r.Raw, `"backend":"http://api-v1:8080"`) {
		t.Fatalf("imported routes: %s", r.Raw)
	}
	s.Stop()

	// A keyspace newer than this binary: migrate and serve refuse.
	rs.Client().Set(t.Context(), "sr:v1:meta:schema", "99", 0)
	if out, code := run("migrate", "up"); code == 0 || !strings.Contains(out, "newer") {
		t.Fatalf("migrate up on a newer keyspace: %d %s", code, out)
	}
	cmd = exec.Command(binPath)
	cmd.Env = append(env, "SR_LISTEN=127.0.0.1:0")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "newer") {
		t.Fatalf("serve on a newer keyspace: %s", out)
	}
	cmd = exec.Command(binPath, "--no-migrate")
	cmd.Env = append(env, "SR_LISTEN=127.0.0.1:0")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("serve --no-migrate on a newer keyspace: %s", out)
	}
}
