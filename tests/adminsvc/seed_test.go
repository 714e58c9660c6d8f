package adminsvc_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// The seed guide's clients talk to http://proxy:81. They run unchanged: the
// standard proxy variables send that host to adminsvc (curl, Python
// requests and Go's http.DefaultClient all honour them).
func proxyEnv(s *svc) []string {
	env := []string{}
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "no_proxy", "all_proxy":
			continue
		}
		env = append(env, e)
	}
	return append(env, "http_proxy="+s.URL, "HTTP_PROXY="+s.URL, "no_proxy=", "NO_PROXY=", "PYTHONIOENCODING=utf-8")
}

func seedFile(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "seed", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSeedCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()})
	run := func(script string) string {
		cmd := exec.Command("sh", seedFile(t, script))
		cmd.Env = append(proxyEnv(s), "CURL_HOME=/nonexistent")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	if out := run("register.sh"); !strings.Contains(out, `{"status":"registered","host":"api.example.com","path":"/v2","backend":"http://api-v2:9000"}`) {
		t.Fatalf("register.sh: %s", out)
	}
	if out := run("routes.sh"); !strings.Contains(out, `"total":1`) || !strings.Contains(out, `"backend":"http://api-v2:9000"`) {
		t.Fatalf("routes.sh: %s", out)
	}
	if out := run("deregister.sh"); !strings.Contains(out, `{"status":"deregistered","host":"api.example.com","path":"/v2"}`) {
		t.Fatalf("deregister.sh: %s", out)
	}
	if out := run("routes.sh"); !strings.Contains(out, `"total":0`) {
		t.Fatalf("routes.sh after deregister: %s", out)
	}
}

func TestSeedPythonRequests(t *testing.T) {
	if err := exec.Command("python3", "-c", "import requests").Run(); err != nil {
		t.Skip("python3 with requests (Debian python3-requests) not installed")
	}
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()})
	cmd := exec.Command("python3", seedFile(t, "registry_client.py"))
	cmd.Env = proxyEnv(s)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	want := []string{
		"✓ Registered api.example.com/v2 → http://api-v2:9000",
		"Total routes: 1",
		"  api.example.com/v2 → http://api-v2:9000",
		"✓ Deregistered api.example.com/v2",
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Fatalf("python output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(string(out), "✗") {
		t.Fatalf("python client reported a failure:\n%s", out)
	}
	// The route's options (rate_limit, websocket) went through validation.
	if !strings.Contains(s.Logs.String(), `"action":"register"`) || !strings.Contains(s.Logs.String(), `"action":"deregister"`) {
		t.Fatalf("audit lines missing:\n%s", s.Logs.String())
	}
}

func TestSeedGoClient(t *testing.T) {
	ln, err := net.Listen("tcp", ":9000")
	if err != nil {
		t.Skip("the seed's Go example listens on :9000, which is busy here")
	}
	ln.Close()
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()})

	dir := t.TempDir()
	src, err := os.ReadFile(seedFile(t, "main.go.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "seedclient", "main.go")
	build.Dir = dir
	build.Env = append(os.Environ(), "GO111MODULE=on", "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the seed's Go example: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(dir, "seedclient"))
	cmd.Env = proxyEnv(s)
	out := &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitFor(t, 10*time.Second, "the Go client's registration", func() bool {
		return s.do("GET", "/routes", "").Body["total"] == 1.0
	})
	r := s.do("GET", "/routes", "")
	route := r.Body["routes"].([]any)[0].(map[string]any)
	opts := route["options"].(map[string]any)
	if route["backend"] != "http://localhost:9000" || opts["timeout"] != "60s" || opts["websocket"] != true {
		t.Fatalf("registered route: %s", r.Raw)
	}
	// The example serves :9000 until SIGTERM, then deregisters.
	waitFor(t, 10*time.Second, "the example's server", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:9000")
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("seed Go client exit: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("seed Go client did not exit:\n%s", out.String())
	}
	for _, w := range []string{"✓ Registered api.example.com/v2 → http://localhost:9000", "✓ Deregistered api.example.com/v2", "Shutdown complete"} {
		if !strings.Contains(out.String(), w) {
			t.Fatalf("Go client output lacks %q:\n%s", w, out.String())
		}
	}
	if r := s.do("GET", "/routes", ""); r.Body["total"] != 0.0 {
		t.Fatalf("route left after the client's shutdown: %s", r.Raw)
	}
}
