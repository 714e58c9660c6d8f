package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
)

// These tests run the built srctl binary, as scripts and units do.

func TestMain(m *testing.M) {
	code := m.Run()
	clienttest.Cleanup()
	os.Exit(code)
}

type result struct {
	code   int
	stdout string
	stderr string
}

// srctl runs the binary with env (KEY=value) added to a clean SR_* set.
func srctl(t *testing.T, env []string, args ...string) result {
	t.Helper()
	bin := clienttest.Build(t, "./adminsvc/srctl")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SR_") && !strings.HasPrefix(kv, "SERVICE_CONFIG_FILE=") {
			out = append(out, kv)
		}
	}
	return out
}

func want(t *testing.T, r result, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
}

func decode(t *testing.T, r result) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("--json output is not a JSON object: %v\n%s", err, r.stdout)
	}
	return v
}

func TestUsageErrorsExit1(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"register", "--host", "a.example.com"},
		{"register", "--bogus-flag"},
		{"deregister"},
		{"register", "--config", "/does/not/exist.json"},
		{"register", "--config", "x.json", "--host", "a.example.com"},
		{"instance"},
		{"heartbeat", "--service", "s"},
		{"--registry", "ftp://nope", "routes"},
	} {
		r := srctl(t, nil, args...)
		want(t, r, 1, strings.Join(args, " "))
		if r.stderr == "" {
			t.Errorf("%v: no message on stderr", args)
		}
	}
	want(t, srctl(t, nil, "--help"), 0, "--help")
	if r := srctl(t, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "srctl ") {
		t.Fatalf("version: %+v", r)
	}
}

func TestUnavailableExits3(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d", clienttest.FreePort(t))
	env := []string{"SR_REGISTRY_URL=" + url}
	r := srctl(t, env, "--retries", "2", "routes")
	want(t, r, 3, "routes at a closed port")
	r = srctl(t, env, "--json", "--retries", "1", "register", "--host", "a.example.com", "--path", "/", "--backend", "http://b:1")
	want(t, r, 3, "register at a closed port")
	if v := decode(t, r); v["exit_code"] != float64(3) || !strings.Contains(fmt.Sprint(v["error"]), "connection refused") {
		t.Fatalf("--json error: %v", v)
	}
	want(t, srctl(t, env, "--retries", "1", "health"), 3, "health at a closed port")
}

func TestCommandsAgainstAdminsvc(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	env := []string{"SR_REGISTRY_URL=" + reg.URL}

	r := srctl(t, env, "register", "--host", "api.example.com", "--path", "/v2", "--backend", "http://api-v2:9000",
		"--route-timeout", "60s", "--websocket", "--header", "X-API-Version=2.0", "--rate-limit", "100")
	want(t, r, 0, "register")
	if strings.TrimSpace(r.stdout) != "registered api.example.com/v2 -> http://api-v2:9000" {
		t.Fatalf("register text: %q", r.stdout)
	}
	// The same again is idempotent; --json shows the API's answer.
	r = srctl(t, env, "--json", "register", "--host", "api.example.com", "--path", "/v2", "--backend", "http://api-v2:9000",
		"--route-timeout", "60s", "--websocket", "--header", "X-API-Version=2.0", "--rate-limit", "100")
	want(t, r, 0, "register again")
	if v := decode(t, r); v["status"] != "registered" || v["backend"] != "http://api-v2:9000" {
		t.Fatalf("register --json: %v", v)
	}
	// Same host+path, other backend: refused, exit 2.
	r = srctl(t, env, "register", "--json", "--host", "api.example.com", "--path", "/v2", "--backend", "http://other:1")
	want(t, r, 2, "conflicting register")
	if v := decode(t, r); v["error"] != "route already exists" || v["status"] != float64(409) {
		t.Fatalf("conflict --json: %v", v)
	}
	// Invalid input: exit 2 with the field named.
	r = srctl(t, env, "register", "--host", "api.example.com", "--path", "/x", "--backend", "http://b:1", "--route-timeout", "6o")
	want(t, r, 2, "invalid timeout")
	if !strings.Contains(r.stderr, "timeout") {
		t.Fatalf("invalid timeout message: %s", r.stderr)
	}

	r = srctl(t, env, "routes", "--json")
	want(t, r, 0, "routes")
	if v := decode(t, r); v["total"] != float64(1) {
		t.Fatalf("routes --json: %v", v)
	}
	r = srctl(t, env, "routes")
	want(t, r, 0, "routes text")
	if !strings.Contains(r.stdout, "api.example.com/v2 -> http://api-v2:9000") || !strings.Contains(r.stdout, "total: 1") {
		t.Fatalf("routes text: %s", r.stdout)
	}
	r = srctl(t, env, "health", "--json")
	want(t, r, 0, "health")
	if v := decode(t, r); v["status"] != "healthy" || v["registered_routes"] != float64(1) {
		t.Fatalf("health --json: %v", v)
	}

	// Kong is unreachable in these tests: once adminsvc has tried it,
	// health says so and stays healthy (exit 0).
	for deadline := time.Now().Add(15 * time.Second); ; {
		r = srctl(t, env, "health")
		want(t, r, 0, "health text")
		if !strings.HasPrefix(r.stdout, "healthy registered_routes=1 pending_changes=") {
			t.Fatalf("health text: %q", r.stdout)
		}
		if strings.Contains(r.stdout, "kong_error=") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never reported the unreachable Kong: %q", r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}

	want(t, srctl(t, env, "deregister", "--host", "api.example.com", "--path", "/v2"), 0, "deregister")
	r = srctl(t, env, "deregister", "--json", "--host", "api.example.com", "--path", "/v2")
	want(t, r, 2, "deregister again")
	if v := decode(t, r); v["error"] != "route not found" || v["status"] != float64(404) {
		t.Fatalf("deregister again --json: %v", v)
	}
	want(t, srctl(t, env, "deregister", "--missing-ok", "--host", "api.example.com", "--path", "/v2"), 0, "deregister --missing-ok")

	// /v1: instances, weights, heartbeat, maintenance, services.
	want(t, srctl(t, env, "instance", "put", "--service", "orders", "--id", "o1", "--address", "10.0.0.1:8080", "--weight", "100", "--ttl", "30", "--tags", "v1"), 0, "instance put")
	r = srctl(t, env, "--json", "instance", "weight", "--service", "orders", "--id", "o1", "--weight", "10")
	want(t, r, 0, "instance weight")
	if v := decode(t, r); v["weight"] != float64(10) {
		t.Fatalf("weight --json: %v", v)
	}
	want(t, srctl(t, env, "heartbeat", "--service", "orders", "--id", "o1"), 0, "heartbeat")
	want(t, srctl(t, env, "heartbeat", "--service", "orders", "--id", "nope"), 2, "heartbeat of an unknown instance")
	want(t, srctl(t, env, "maintenance", "--service", "orders", "--message", "back soon"), 0, "maintenance on")
	r = srctl(t, env, "--json", "services", "orders")
	want(t, r, 0, "services NAME")
	if v := decode(t, r); v["name"] != "orders" || dig(v, "maintenance", "enabled") != true || len(v["instances"].([]any)) != 1 {
		t.Fatalf("services orders --json: %v", v)
	}
	r = srctl(t, env, "--json", "services")
	want(t, r, 0, "services")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("services --json: %v %s", err, r.stdout)
	}
	want(t, srctl(t, env, "services", "missing"), 2, "services of an unknown name")
	// An instance addressed by its route instead of a service name.
	want(t, srctl(t, env, "register", "--host", "api.example.com", "--path", "/v3", "--backend", "http://api-v3:9000"), 0, "register v3")
	want(t, srctl(t, env, "instance", "put", "--host", "api.example.com", "--path", "/v3", "--address", "10.0.0.6:9000", "--weight", "100", "--ttl", "30"), 0, "instance put by route")
	want(t, srctl(t, env, "instance", "weight", "--host", "api.example.com", "--path", "/v3", "--id", "10.0.0.6:9000", "--weight", "10"), 0, "instance weight by route")
	r = srctl(t, env, "--json", "services", "sr-api.example.com_v3")
	want(t, r, 0, "the route's service")
	if !strings.Contains(r.stdout, `"10.0.0.6:9000"`) || !strings.Contains(r.stdout, `"api-v3:9000"`) {
		t.Fatalf("route service should hold the backend and the added instance:\n%s", r.stdout)
	}
	want(t, srctl(t, env, "instance", "delete", "--service", "orders", "--id", "o1"), 0, "instance delete")
	want(t, srctl(t, env, "instance", "delete", "--service", "orders", "--id", "o1"), 2, "instance delete again")
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func TestMicrokubesServiceConfig(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	cfg := filepath.Join(t.TempDir(), "service.json")
	// The seed's shape, plus a second host; registryUrl is this project's
	// addition and is used because neither the flag nor the env is set.
	body := fmt.Sprintf(`{
  "service": {
    "name": "hello-service",
    "port": 5000,
    "paths": ["/hello", "/hi"],
    "virtual_host": "hello-service.services.consul",
    "hosts": ["hello.example.com", "hi.example.com"],
    "weight": 10,
    "slots": 100
  },
  "gatewayUrl": "http://kong:8000",
  "gatewayAdminUrl": "http://kong:8001",
  "registryUrl": %q,
  "database": {"ignored": true}
}`, reg.URL)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := srctl(t, nil, "--json", "register", "--config", cfg)
	want(t, r, 0, "register --config")
	var answers []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &answers); err != nil || len(answers) != 8 {
		t.Fatalf("register --config --json: want 4 routes + the instance in each route's service: %v\n%s", err, r.stdout)
	}
	r = srctl(t, []string{"SR_REGISTRY_URL=" + reg.URL}, "--json", "routes")
	want(t, r, 0, "routes")
	var routes struct {
		Routes []struct{ Host, Path, Backend string }
		Total  int
	}
	if err := json.Unmarshal([]byte(r.stdout), &routes); err != nil || routes.Total != 4 {
		t.Fatalf("routes after --config: %v %s", err, r.stdout)
	}
	got := map[string]string{}
	for _, rt := range routes.Routes {
		got[rt.Host+rt.Path] = rt.Backend
	}
	for _, k := range []string{"hello.example.com/hello", "hello.example.com/hi", "hi.example.com/hello", "hi.example.com/hi"} {
		if got[k] != "http://hello-service.services.consul:5000" {
			t.Errorf("route %s -> %q", k, got[k])
		}
	}
	// weight lands on the route's own service (the Kong upstream target).
	r = srctl(t, []string{"SR_REGISTRY_URL=" + reg.URL}, "--json", "services", "sr-hello.example.com_hi")
	want(t, r, 0, "services of a route")
	inst := dig(decode(t, r), "instances").([]any)
	if len(inst) != 1 || dig(inst[0], "weight") != float64(10) || dig(inst[0], "address") != "hello-service.services.consul:5000" {
		t.Fatalf("instance from the config: %v", inst)
	}
	// SERVICE_CONFIG_FILE (the seed's variable) stands in for --config.
	want(t, srctl(t, []string{"SERVICE_CONFIG_FILE=" + cfg}, "deregister"), 0, "deregister via SERVICE_CONFIG_FILE")
	r = srctl(t, []string{"SR_REGISTRY_URL=" + reg.URL}, "--json", "routes")
	if v := decode(t, r); v["total"] != float64(0) {
		t.Fatalf("routes after deregister --config: %v", v)
	}

	// A config that cannot be turned into registrations is a usage error.
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"service":{"name":"x","port":70000,"paths":["/x"],"virtual_host":"x.example.com"}}`), 0o600)
	want(t, srctl(t, []string{"SR_REGISTRY_URL=" + reg.URL}, "register", "--config", bad), 1, "port out of range")
}

func TestAPIKeyFlagAndEnv(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{APIKeys: "secret-1"})
	env := []string{"SR_REGISTRY_URL=" + reg.URL}
	r := srctl(t, env, "--json", "routes")
	want(t, r, 2, "no key")
	if v := decode(t, r); v["status"] != float64(401) || v["error"] != "unauthorized" {
		t.Fatalf("no key --json: %v", v)
	}
	want(t, srctl(t, env, "--api-key", "secret-1", "routes"), 0, "--api-key")
	want(t, srctl(t, append(env, "SR_API_KEY=secret-1"), "routes"), 0, "SR_API_KEY")
	want(t, srctl(t, append(env, "SR_API_KEY=wrong"), "routes"), 2, "wrong key")
}

func TestRunRegistersUntilSIGTERM(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	bin := clienttest.Build(t, "./adminsvc/srctl")
	// A second replica's sidecar: the shared route, plus this replica as a
	// leased instance of the route's service.
	cmd := exec.Command(bin, "run", "--host", "run.example.com", "--path", "/r", "--backend", "http://127.0.0.1:9000",
		"--address", "127.0.0.1:9001", "--ttl", "3")
	cmd.Env = append(cleanEnv(), "SR_REGISTRY_URL="+reg.URL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "registered") {
		t.Fatalf("run did not register: %q\n%s", lines.Text(), stderr.String())
	}
	env := []string{"SR_REGISTRY_URL=" + reg.URL}
	// The lease (3s, renewed every 1s) outlives two TTLs thanks to the
	// heartbeat.
	until := time.Now().Add(6 * time.Second)
	for time.Now().Before(until) {
		r := srctl(t, env, "--json", "services", "sr-run.example.com_r")
		want(t, r, 0, "the route's service")
		if !strings.Contains(r.stdout, `"127.0.0.1:9001"`) {
			t.Fatalf("leased instance gone while run renews it:\n%s", r.stdout)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run after SIGTERM: %v\n%s", err, stderr.String())
	}
	if v := decode(t, srctl(t, env, "--json", "routes")); v["total"] != float64(0) {
		t.Fatalf("routes after run stopped: %v", v)
	}
	if r := srctl(t, env, "--json", "services", "sr-run.example.com_r"); strings.Contains(r.stdout, "127.0.0.1:9001") {
		t.Fatalf("instance left after run stopped: %s", r.stdout)
	}
}

// TestShippedCommandLines runs, verbatim, the srctl command lines the
// repository ships: the systemd unit's ExecStartPost/ExecStopPost, the
// Kubernetes init container and preStop hook, the compose health check.
func TestShippedCommandLines(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	env := []string{"SR_REGISTRY_URL=" + reg.URL}
	root := filepath.Join("..", "..")

	unit, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", "example-api.service"))
	if err != nil {
		t.Fatal(err)
	}
	var start, stop []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStartPost="); ok {
			start = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(line, "ExecStopPost="); ok {
			stop = strings.Fields(strings.TrimPrefix(v, "-"))
		}
	}
	runLine(t, env, "systemd ExecStartPost", start, 0)
	if v := decode(t, srctl(t, env, "--json", "routes")); v["total"] != float64(1) {
		t.Fatalf("after ExecStartPost: %v", v)
	}
	runLine(t, env, "systemd ExecStopPost", stop, 0)
	runLine(t, env, "systemd ExecStopPost twice", stop, 0)

	var manifest []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(mustRead(t, filepath.Join(root, "deploy", "k8s", "echo-backend.yaml"))))
	for {
		var d map[string]any
		if dec.Decode(&d) != nil {
			break
		}
		manifest = append(manifest, d)
	}
	podSpec := dig(manifest[0], "spec", "template", "spec")
	initCmd := strs(dig(podSpec.(map[string]any)["initContainers"].([]any)[0], "command"))
	preStop := strs(dig(podSpec.(map[string]any)["containers"].([]any)[0], "lifecycle", "preStop", "exec", "command"))
	runLine(t, env, "k8s init container", initCmd, 0)
	runLine(t, env, "k8s init container again (pod restart)", initCmd, 0)
	runLine(t, env, "k8s preStop", preStop, 0)
	if v := decode(t, srctl(t, env, "--json", "routes")); v["total"] != float64(0) {
		t.Fatalf("after preStop: %v", v)
	}

	var compose map[string]any
	if err := yaml.Unmarshal(mustRead(t, filepath.Join(root, "deploy", "docker-compose.yml")), &compose); err != nil {
		t.Fatal(err)
	}
	hc := strs(dig(compose, "services", "adminsvc", "healthcheck", "test"))[1:] // drop "CMD"
	for i, a := range hc {
		if a == "--registry" {
			hc[i+1] = reg.URL // the container's own address, here
		}
	}
	runLine(t, nil, "compose healthcheck", hc, 0)
}

func runLine(t *testing.T, env []string, what string, line []string, code int) {
	t.Helper()
	if len(line) == 0 || line[0] != "/usr/local/bin/srctl" {
		t.Fatalf("%s: not an srctl command line: %v", what, line)
	}
	want(t, srctl(t, env, line[1:]...), code, what+": "+strings.Join(line, " "))
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
