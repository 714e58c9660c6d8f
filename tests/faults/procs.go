package faults

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
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

// Adminsvc is one real adminsvc process (clienttest's launcher).
type Adminsvc = clienttest.Adminsvc

// StartAdminsvc runs adminsvc in DB mode with a 1 s reconcile and no API
// rate limit, and waits until it answers /health (any status: the store may
// be down on purpose). It is stopped at test end and its log printed if the
// test failed.
func StartAdminsvc(t testing.TB, o AdminOptions) *Adminsvc {
	t.Helper()
	env := map[string]string{
		"SR_KONG_MODE":          "db",
		"SR_RECONCILE_INTERVAL": "1s",
		"SR_RATE_LIMIT":         "0",
		"SR_LOG_FORMAT":         "text",
	}
	for k, v := range o.Env {
		env[k] = v
	}
	return clienttest.Launch(t, clienttest.LaunchOptions{RedisURL: o.RedisURL, KongURL: o.KongURL, Env: env})
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
