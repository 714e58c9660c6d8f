package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// PluginBinary builds ./plugins/service-registry once per test binary; its
// base name is the plugin name, as tests/harness requires.
func PluginBinary(t testing.TB) string {
	t.Helper()
	return clienttest.Build(t, "./plugins/service-registry")
}

// AdminsvcBinary builds ./adminsvc once per test binary.
func AdminsvcBinary(t testing.TB) string {
	t.Helper()
	return clienttest.Build(t, "./adminsvc")
}

// CleanupBuilds removes the binaries built by PluginBinary and AdminsvcBinary
// (call it from TestMain).
func CleanupBuilds() { clienttest.Cleanup() }

// AdminOptions configures StartAdminsvc.
type AdminOptions struct {
	RedisURL string // required
	KongURL  string // default: a closed loopback port
	// Env adds or overrides settings (SR_*=...), and may carry SSL_CERT_FILE.
	Env map[string]string
}

// Adminsvc is one real adminsvc process on a fixed loopback port.
type Adminsvc struct {
	URL  string
	t    testing.TB
	bin  string
	env  []string
	mu   sync.Mutex
	log  testbin.Buffer // every process's output, across restarts
	cmd  *exec.Cmd
	done chan struct{}
}

// StartAdminsvc runs adminsvc and waits until it answers /health (any
// status: the store may be down on purpose). It is stopped at test end and
// its log printed if the test failed.
func StartAdminsvc(t testing.TB, o AdminOptions) *Adminsvc {
	t.Helper()
	port := redistest.FreePort(t)
	if o.KongURL == "" {
		o.KongURL = fmt.Sprintf("http://127.0.0.1:%d", redistest.FreePort(t))
	}
	env := map[string]string{
		"SR_LISTEN":             fmt.Sprintf("127.0.0.1:%d", port),
		"SR_REDIS_URL":          o.RedisURL,
		"SR_KONG_ADMIN_URL":     o.KongURL,
		"SR_KONG_MODE":          "db",
		"SR_RECONCILE_INTERVAL": "1s",
		"SR_RATE_LIMIT":         "0",
		"SR_LOG_FORMAT":         "text",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	a := &Adminsvc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), t: t, bin: AdminsvcBinary(t)}
	a.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a.env = append(a.env, k+"="+env[k])
	}
	a.start()
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("adminsvc log (last 4000 bytes):\n%s", tail(a.Log(), 4000))
		}
	})
	return a
}

func (a *Adminsvc) start() {
	a.t.Helper()
	cmd := exec.Command(a.bin)
	cmd.Env = a.env
	cmd.Stdout, cmd.Stderr = &a.log, &a.log
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("starting adminsvc: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(a.URL + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-done:
			a.t.Fatalf("adminsvc exited at start:\n%s", a.Log())
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("adminsvc not answering after 20s:\n%s", a.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is everything the process (and its predecessors, after Restart) printed.
func (a *Adminsvc) Log() string { return a.log.String() }

// PID of the running process (0 when stopped).
func (a *Adminsvc) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Stop sends SIGTERM and waits (SIGKILL after 15 s).
func (a *Adminsvc) Stop() { a.end(syscall.SIGTERM) }

// Kill sends SIGKILL and waits.
func (a *Adminsvc) Kill() { a.end(syscall.SIGKILL) }

func (a *Adminsvc) end(sig syscall.Signal) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops (SIGTERM) and starts the process again, same port and settings.
func (a *Adminsvc) Restart() {
	a.t.Helper()
	a.Stop()
	a.start()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Goroutines waits until runtime.NumGoroutine settles at or below limit and
// returns the last count and, on failure, the stacks of what is left. The
// wait matters: closed connections and timers end their goroutines a little
// after Close returns.
func Goroutines(ctx context.Context, limit int) (int, string) {
	for {
		n := runtime.NumGoroutine()
		if n <= limit {
			return n, ""
		}
		select {
		case <-ctx.Done():
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return n, string(buf)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
