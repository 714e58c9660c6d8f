package browser

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/tests/harness"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

const apiKey = "console-test-key-0123456789"

// env is everything the console talks to, and the Kong node whose plugin
// routes by what the console changes.
type env struct {
	t     *testing.T
	redis *redistest.Server
	fake  *kongfake.Fake // the Kong Admin API adminsvc syncs to
	kong  *harness.Kong  // the harness node running the real plugin
	admin string         // adminsvc base URL
	logs  *testbin.Buffer
	bes   map[string]*backend
	http  *http.Client
}

type backend struct {
	id   string
	addr string
	hits atomic.Int64
}

func newBackend(t *testing.T, id string) *backend {
	b := &backend{id: id}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Instance", id)
		_, _ = io.WriteString(w, id)
	}))
	t.Cleanup(srv.Close)
	b.addr = srv.Listener.Addr().String()
	return b
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, bes: map[string]*backend{}, http: &http.Client{Timeout: 20 * time.Second}}
	e.redis = redistest.Start(t, redistest.Options{})
	e.fake = kongfake.Start(t, kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": nil}})
	e.startAdminsvc(e.fake.URL())
	// The harness node: service "orders" resolved by the plugin from the
	// same Redis the console writes through adminsvc.
	e.kong = harness.Start(t, harness.Options{Binary: pluginBin, Workers: 2})
	e.kong.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	if _, err := e.kong.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		e.bes[id] = newBackend(t, id)
		e.api("PUT", "/v1/services/orders/instances/"+id, fmt.Sprintf(`{"address":%q,"weight":1}`, e.bes[id].addr), 200)
	}
	if _, err := e.kong.AddPlugin(harness.PluginConfig{Service: "orders", Config: map[string]any{
		"registry": "redis", "service": "orders",
		"redis": map[string]any{"host": "127.0.0.1", "port": e.redis.Port, "timeout_ms": 500},
	}}); err != nil {
		t.Fatalf("plugin config refused: %v", err)
	}
	return e
}

func (e *env) startAdminsvc(kongURL string) {
	t := e.t
	port := redistest.FreePort(t)
	e.admin = fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(adminsvcBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SR_LISTEN=127.0.0.1:" + strconv.Itoa(port), "SR_REDIS_URL=" + e.redis.URL(),
		"SR_KONG_ADMIN_URL=" + kongURL, "SR_RECONCILE_INTERVAL=1s", "SR_RATE_LIMIT=0",
		"SR_API_KEYS=" + apiKey, "SR_LOG_LEVEL=info"}
	e.logs = &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting adminsvc: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(e.admin + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("adminsvc exited at start:\n%s", e.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("adminsvc not answering:\n%s", e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// api is another client of the registry API (a script, a deploy job).
func (e *env) api(method, path, body string, want int) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.admin+path, strings.NewReader(body))
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: %d %s (want %d)", method, path, resp.StatusCode, raw, want)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// split sends n requests through the Kong node and counts them by backend
// and by status.
func (e *env) split(n int) (map[string]int, map[int]int) {
	e.t.Helper()
	var mu sync.Mutex
	byInst, byStatus := map[string]int{}, map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				st, _, inst := e.get("/orders")
				mu.Lock()
				byStatus[st]++
				if inst != "" {
					byInst[inst]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return byInst, byStatus
}

// get sends one request through Kong: status, body, answering instance.
func (e *env) get(path string) (int, string, string) {
	resp, err := e.http.Get(e.kong.URL() + path)
	if err != nil {
		return -1, err.Error(), ""
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header.Get("X-Instance")
}

// eventually polls cond until it holds, failing after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, d, what, cond)
}
