package sentinel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// adminBin and pluginBin are built once for the package; the plugin's file
// name is the plugin name, as Kong requires.
var adminBin, pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sentinel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	adminBin = filepath.Join(dir, "adminsvc")
	pluginBin = filepath.Join(dir, "service-registry")
	for out, pkg := range map[string]string{adminBin: "../../adminsvc", pluginBin: "../../plugins/service-registry"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// replicated blocks until every replica has acknowledged the primary's
// writes so far (WAIT), so a failover cannot lose what the test wrote:
// Redis replication is asynchronous and the tests assert on data, not on
// Redis' durability.
func replicated(t testing.TB, sn *redistest.Sentinel) {
	t.Helper()
	p := sn.Primary(t)
	want := len(sn.Data) - 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p.Client().Do(ctx, "WAIT", want, 5000).Int()
	if err != nil || n != want {
		t.Fatalf("WAIT %d replicas: got %d, %v", want, n, err)
	}
}

// waitFor polls cond until it holds or d passes; cond says what it saw.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		ok, seen := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", d, what, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
