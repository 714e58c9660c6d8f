package kongbench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// blackhole accepts TCP connections and never answers: an unreachable
// Redis of the worst kind (every call waits for its timeout). It counts
// the connections, i.e. the dials the plugin made.
type blackhole struct {
	l     net.Listener
	dials atomic.Int64
}

func startBlackhole(t *testing.T) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{l: l}
	go func() {
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			b.dials.Add(1)
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { l.Close() })
	return b
}

var (
	reP99 = regexp.MustCompile(`(?m)^\s+99%\s+([0-9.]+)(us|ms|s)\s*$`)
	reP50 = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// wrkP99 runs wrk --latency and returns its p99 latency and request count
// (w.rps holds the p50 in ms).
func wrkP99(t *testing.T, url string, secs int) (time.Duration, wrkResult) {
	t.Helper()
	out, err := exec.Command("wrk", "-t1", "-c1", "-d"+strconv.Itoa(secs)+"s", "--latency", url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	m := reP99.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no p99 in wrk output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	var w wrkResult
	if m := reP50.FindStringSubmatch(string(out)); m != nil {
		p50, _ := strconv.ParseFloat(m[1], 64)
		w.rps = p50 * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]) / float64(time.Millisecond)
	}
	if m := reReqs.FindStringSubmatch(string(out)); m != nil {
		w.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return time.Duration(v * float64(unit)), w
}

// TestKongRedisDown (KONGBENCH=1): registry=redis with rate limiting and an
// empty cache, Redis unreachable (a black hole: connections accepted, never
// answered), 30 s of traffic at c=1 through a real Kong. Requests get 503
// (no instance known) at once; the p99 added latency against a route
// without plugins is reported (goal: <= timeout_ms + 5 ms), and the dials
// the plugin made are counted: background probes only, not one per
// request.
func TestKongRedisDown(t *testing.T) {
	if os.Getenv("KONGBENCH") != "1" {
		t.Skip("real-Kong benchmark: run with KONGBENCH=1 (make bench-kong)")
	}
	realkong := envOr("KONGBENCH_REALKONG", "/opt/realkong")
	secs, _ := strconv.Atoi(envOr("KONGBENCH_DOWN_SECONDS", "30"))
	dir := t.TempDir()
	srBin := os.Getenv("KONGBENCH_SR_BIN")
	if srBin == "" {
		var err error
		if srBin, err = testbin.Build(dir, "./plugins/service-registry", "service-registry",
			"CGO_ENABLED=0", "GOFLAGS=-ldflags=-X=main.version=0.1.0"); err != nil {
			t.Fatal(err)
		}
	}
	bh := startBlackhole(t)
	port := bh.l.Addr().(*net.TCPAddr).Port
	backend := startBackend(t)
	const timeoutMs = 20
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
- name: plain
  url: http://%s
  routes:
  - name: plain
    paths: [/plain]
- name: down
  url: http://%s
  routes:
  - name: down
    paths: [/down]
    plugins:
    - name: service-registry
      config: {registry: redis, service: bench, redis: {host: 127.0.0.1, port: %d, timeout_ms: %d}, rate_limit: {enabled: true, requests_per_second: 1000}}
`, backend, backend, port, timeoutMs)
	ymlPath := filepath.Join(dir, "kong.yml")
	if err := os.WriteFile(ymlPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(os.TempDir(), fmt.Sprintf("perf-kongdown-%d", os.Getpid()))
	k := startKong(t, realkong, prefix, ymlPath, []string{srBin})
	waitRouted(t, k.url("/plain"))
	plain, pw := wrkP99(t, k.url("/plain"), 5)
	d0 := bh.dials.Load()
	t0 := time.Now()
	down, dw := wrkP99(t, k.url("/down"), secs)
	el := time.Since(t0)
	dials := bh.dials.Load() - d0
	t.Logf("Kong %s, c=1: route without plugins p50 %.2f ms p99 %s (%d requests in 5 s); registry=redis + rate limit with Redis a black hole, empty cache: p50 %.2f ms p99 %s over %d requests in %d s, added p99 %s (goal <= timeout_ms %d ms + 5 ms); dials to the black hole %d in %s (background probes; requests: %d)",
		realkong, pw.rps, plain, pw.requests, dw.rps, down, dw.requests, secs, down-plain, timeoutMs, dials, el.Round(time.Second), dw.requests)
	if down-plain > 10*(timeoutMs+5)*time.Millisecond {
		t.Errorf("p99 added latency %s with redis down", down-plain)
	}
	if dials > dw.requests/10+int64(el/(100*time.Millisecond)) {
		t.Errorf("%d dials for %d requests in %s: requests wait on the dead redis", dials, dw.requests, el)
	}
}
