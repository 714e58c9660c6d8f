package clienttest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

var (
	buildMu  sync.Mutex
	built    = map[string]string{} // package → binary
	buildDir string
)

// HasAdminsvc reports whether ./adminsvc has code to build yet.
func HasAdminsvc() bool {
	root, err := testbin.RepoRoot()
	if err != nil {
		return false
	}
	files, _ := filepath.Glob(filepath.Join(root, "adminsvc", "*.go"))
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			return true
		}
	}
	return false
}

// Build compiles a package of this repository (e.g. "./adminsvc") once per
// test binary and returns the executable's path. Call Cleanup from
// TestMain to remove the build directory.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "clienttest-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	bin, err := testbin.Build(buildDir, pkg, filepath.Base(pkg), "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	built[pkg] = bin
	return bin
}

// Cleanup removes what Build made.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Options for Start.
type Options struct {
	// APIKeys sets SR_API_KEYS.
	APIKeys string
	// Env adds settings (KEY=value).
	Env []string
}

// Adminsvc is a running adminsvc process.
type Adminsvc struct {
	URL   string
	Redis *redistest.Server
	cmd   *exec.Cmd
	log   *testbin.Buffer
	done  chan struct{}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs the real adminsvc against a fresh redis-server. Kong's Admin
// API points at a closed loopback port: registrations must still be
// accepted (CONTRACT §1: Kong unreachable is not an error).
func Start(t testing.TB, opts Options) *Adminsvc {
	t.Helper()
	if !HasAdminsvc() {
		t.Fatal("adminsvc has no Go code")
	}
	bin := Build(t, "./adminsvc")
	rs := redistest.Start(t, redistest.Options{})
	port := FreePort(t)
	kongPort := FreePort(t) // nothing listens there
	a := &Adminsvc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Redis: rs, log: &testbin.Buffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(bin)
	a.cmd.Env = append(os.Environ(),
		fmt.Sprintf("SR_LISTEN=127.0.0.1:%d", port),
		"SR_REDIS_URL="+rs.URL(),
		fmt.Sprintf("SR_KONG_ADMIN_URL=http://127.0.0.1:%d", kongPort),
		"SR_KONG_MODE=db",
		"SR_API_KEYS="+opts.APIKeys,
	)
	a.cmd.Env = append(a.cmd.Env, opts.Env...)
	a.cmd.Stdout = a.log
	a.cmd.Stderr = a.cmd.Stdout
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting adminsvc: %v", err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("adminsvc log:\n%s", a.Log())
		}
	})
	a.waitHealthy(t)
	return a
}

// Log returns what adminsvc printed so far.
func (a *Adminsvc) Log() string {
	return a.log.String()
}

// Stop ends the process (SIGTERM, then SIGKILL after 5s).
func (a *Adminsvc) Stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

func (a *Adminsvc) waitHealthy(t testing.TB) {
	t.Helper()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-a.done:
			t.Fatalf("adminsvc exited at start:\n%s", a.Log())
		default:
		}
		resp, err := hc.Get(a.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("adminsvc not healthy after 30s (last: %v):\n%s", err, a.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Context is a test context bounded well under go test's timeout.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
