package clienttest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// LaunchOptions configures Launch.
type LaunchOptions struct {
	RedisURL string // SR_REDIS_URL; required
	KongURL  string // SR_KONG_ADMIN_URL; default a closed loopback port
	Port     int    // listen port; 0 picks a free one
	// Env adds or overrides settings (SR_*) and may carry SSL_CERT_FILE.
	// Nothing else of the test's environment but PATH and HOME is passed,
	// so a developer's own SR_* settings never leak in.
	Env  map[string]string
	Args []string
	// Binary is an adminsvc executable already built; empty builds
	// ./adminsvc once per test binary.
	Binary string
	// Healthy waits for /health to answer 200; otherwise any answer will
	// do (a test may start adminsvc with its store down on purpose).
	Healthy bool
}

// Adminsvc is one real adminsvc process on a fixed loopback port; the one
// launcher of the repository's tests (client, srctl, tests/adminsvc,
// tests/faults, tests/security ...).
type Adminsvc struct {
	URL   string
	Redis *redistest.Server // the server Start made; nil after Launch

	t    testing.TB
	bin  string
	opts LaunchOptions
	env  []string
	log  testbin.Buffer // every process's output, across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Launch runs adminsvc and waits until it answers; it is stopped at test
// end, and its log printed if the test failed.
func Launch(t testing.TB, o LaunchOptions) *Adminsvc {
	t.Helper()
	if o.Port == 0 {
		o.Port = FreePort(t)
	}
	if o.KongURL == "" {
		o.KongURL = fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)) // nothing listens there
	}
	env := map[string]string{
		"SR_LISTEN":         fmt.Sprintf("127.0.0.1:%d", o.Port),
		"SR_REDIS_URL":      o.RedisURL,
		"SR_KONG_ADMIN_URL": o.KongURL,
	}
	for k, v := range o.Env {
		env[k] = v
	}
	if o.Binary == "" {
		o.Binary = Build(t, "./adminsvc")
	}
	a := &Adminsvc{URL: fmt.Sprintf("http://127.0.0.1:%d", o.Port), t: t, bin: o.Binary, opts: o}
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
	cmd := exec.Command(a.bin, a.opts.Args...)
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
	var last string
	up := testbin.Poll(30*time.Second, func() bool {
		select {
		case <-done:
			a.t.Fatalf("adminsvc exited at start:\n%s", a.Log())
		default:
		}
		resp, err := hc.Get(a.URL + "/health")
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		last = resp.Status
		return !a.opts.Healthy || resp.StatusCode == http.StatusOK
	})
	if !up {
		a.t.Fatalf("adminsvc not answering after 30s (last: %s):\n%s", last, a.Log())
	}
}

// Log is everything the process (and its predecessors, after Restart) printed.
func (a *Adminsvc) Log() string { return a.log.String() }

// Output is the buffer Log reads, for tests that hold on to it.
func (a *Adminsvc) Output() *testbin.Buffer { return &a.log }

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
