package adminsvc_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

var binPath string

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) (err error) {
		binPath, err = testbin.Build(dir, "./adminsvc", "adminsvc")
		return err
	})
}

type svcOpts struct {
	Redis string            // redis URL
	Kong  string            // Kong Admin URL; default an unreachable port
	Port  int               // 0: a free port
	Env   map[string]string // extra SR_* settings
	Args  []string
}

// svc is one running adminsvc process.
type svc struct {
	t    testing.TB
	opts svcOpts
	cmd  *exec.Cmd
	URL  string
	Logs *testbin.Buffer
	done chan struct{}
}

func startSvc(t testing.TB, o svcOpts) *svc {
	t.Helper()
	if o.Port == 0 {
		o.Port = redistest.FreePort(t)
	}
	if o.Kong == "" {
		o.Kong = fmt.Sprintf("http://127.0.0.1:%d", redistest.FreePort(t))
	}
	s := &svc{t: t, opts: o, URL: fmt.Sprintf("http://127.0.0.1:%d", o.Port)}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *svc) start() {
	s.t.Helper()
	env := map[string]string{
		"SR_LISTEN":             fmt.Sprintf("127.0.0.1:%d", s.opts.Port),
		"SR_REDIS_URL":          s.opts.Redis,
		"SR_KONG_ADMIN_URL":     s.opts.Kong,
		"SR_RECONCILE_INTERVAL": "1s",
		"SR_LOG_LEVEL":          "info",
		"SR_RATE_LIMIT":         "0",
	}
	for k, v := range s.opts.Env {
		env[k] = v
	}
	cmd := exec.Command(binPath, s.opts.Args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s.Logs = &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = s.Logs, s.Logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting adminsvc: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("adminsvc exited at start:\n%s", s.Logs.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("adminsvc not answering:\n%s", s.Logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for a graceful exit.
func (s *svc) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Kill ends the process without a chance to clean up.
func (s *svc) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the process again with the same settings and port.
func (s *svc) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

type resp struct {
	Status int
	Body   map[string]any
	Raw    string
	Header http.Header
}

func (s *svc) do(method, path, body string, headers ...string) resp {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer hr.Body.Close()
	raw, _ := io.ReadAll(hr.Body)
	r := resp{Status: hr.StatusCode, Raw: string(raw), Header: hr.Header}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, timeout, what, cond)
}

// metric reads one unlabelled value from /metrics.
func (s *svc) metric(name string) float64 {
	s.t.Helper()
	for _, line := range strings.Split(s.do("GET", "/metrics", "").Raw, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	s.t.Fatalf("metric %s missing", name)
	return 0
}

// waitReconciles waits until n more reconciles (full or change-triggered)
// have run, successful or not.
func (s *svc) waitReconciles(n int) {
	s.t.Helper()
	start := s.metric("sr_reconcile_runs_total")
	waitFor(s.t, 20*time.Second, fmt.Sprintf("%d reconciles", n), func() bool {
		return s.metric("sr_reconcile_runs_total") >= start+float64(n)
	})
}

// waitFailedReconcile waits for a reconcile that failed (Kong down).
func (s *svc) waitFailedReconcile() {
	s.t.Helper()
	start := s.metric("sr_reconcile_errors_total")
	waitFor(s.t, 20*time.Second, "a failed reconcile", func() bool {
		return s.metric("sr_reconcile_errors_total") > start
	})
}
