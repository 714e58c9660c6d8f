package clienttest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// Start runs the real adminsvc against a fresh redis-server, healthy
// before it returns. Kong's Admin API points at a closed loopback port:
// registrations must still be accepted (CONTRACT §1: Kong unreachable is not
// an error).
func Start(t testing.TB, opts Options) *Adminsvc {
	t.Helper()
	if !HasAdminsvc() {
		t.Fatal("adminsvc has no Go code")
	}
	rs := redistest.Start(t, redistest.Options{})
	env := map[string]string{"SR_KONG_MODE": "db", "SR_API_KEYS": opts.APIKeys}
	for _, kv := range opts.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	a := Launch(t, LaunchOptions{RedisURL: rs.URL(), Env: env, Healthy: true})
	a.Redis = rs
	return a
}

// Context is a test context bounded well under go test's timeout.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
