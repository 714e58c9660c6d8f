package adminsvc_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
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

// svc is one running adminsvc process (clienttest's launcher) with this
// package's request helpers.
type svc struct {
	*clienttest.Adminsvc
	t    testing.TB
	Logs *testbin.Buffer
}

func startSvc(t testing.TB, o svcOpts) *svc {
	t.Helper()
	env := map[string]string{"SR_RECONCILE_INTERVAL": "1s", "SR_LOG_LEVEL": "info", "SR_RATE_LIMIT": "0"}
	for k, v := range o.Env {
		env[k] = v
	}
	a := clienttest.Launch(t, clienttest.LaunchOptions{RedisURL: o.Redis, KongURL: o.Kong, Port: o.Port, Env: env, Args: o.Args, Binary: binPath})
	return &svc{Adminsvc: a, t: t, Logs: a.Output()}
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
