package kongbench

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
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

// TestKongRedisDown (KONGBENCH=1): registry=redis with rate limiting and an
// empty cache, Redis unreachable (a black hole: connections accepted, never
// answered, so every call would wait its whole timeout_ms), through a real
// Kong at c=1. Its peer is the same route with Redis up (503 from the
// cached snapshot of a service without instances: the same exit), and a
// route without plugins; rounds interleave so the machine's stalls hit all
// three alike. What Redis being down adds is down − up; the requests that
// took timeout_ms or more are counted per route (a request that waited on
// Redis takes at least that), and the dials to the black hole are counted:
// background probes only, not one per request.
func TestKongRedisDown(t *testing.T) {
	if os.Getenv("KONGBENCH") != "1" {
		t.Skip("real-Kong benchmark: run with KONGBENCH=1 (make bench-kong)")
	}
	realkong := envOr("KONGBENCH_REALKONG", "/opt/realkong")
	secs, _ := strconv.Atoi(envOr("KONGBENCH_DOWN_SECONDS", "30"))
	const rounds = 6
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
	rs := redistest.Start(t, redistest.Options{})
	backend := startBackend(t)
	const timeoutMs = 20
	timeout := timeoutMs * time.Millisecond
	cfg := func(port int) string {
		return fmt.Sprintf("{registry: redis, service: bench, redis: {host: 127.0.0.1, port: %d, timeout_ms: %d}, rate_limit: {enabled: true, requests_per_second: 1000000}}", port, timeoutMs)
	}
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
- name: plain
  url: http://%[1]s
  routes:
  - {name: plain, paths: [/plain]}
- name: up
  url: http://%[1]s
  routes:
  - name: up
    paths: [/up]
    plugins:
    - {name: service-registry, config: %[2]s}
- name: down
  url: http://%[1]s
  routes:
  - name: down
    paths: [/down]
    plugins:
    - {name: service-registry, config: %[3]s}
`, backend, cfg(rs.Port), cfg(bh.l.Addr().(*net.TCPAddr).Port))
	ymlPath := filepath.Join(dir, "kong.yml")
	if err := os.WriteFile(ymlPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(os.TempDir(), fmt.Sprintf("perf-kongdown-%d", os.Getpid()))
	k := startKong(t, realkong, prefix, ymlPath, []string{srBin})
	waitRouted(t, k.url("/plain"))
	c := &http.Client{Timeout: 10 * time.Second}
	hammer(t, c, k.url("/up"), time.Second) // the up route's snapshot and limiter warm

	per := time.Duration(secs) * time.Second / rounds
	var plain, up, down []latencies
	d0, t0 := bh.dials.Load(), time.Now()
	for i := 0; i < rounds; i++ {
		plain = append(plain, hammer(t, c, k.url("/plain"), per/2))
		up = append(up, hammer(t, c, k.url("/up"), per))
		down = append(down, hammer(t, c, k.url("/down"), per))
	}
	el := time.Since(t0)
	dials := bh.dials.Load() - d0
	sp, su, sd := summarize(plain, timeout), summarize(up, timeout), summarize(down, timeout)
	t.Logf("Kong %s, c=1, %d interleaved rounds, %s of traffic to the down route, timeout_ms %d:\n\n%s\nadded by Redis down (down − up): p50 %s, p99 %s (goal ≤ timeout_ms + 5 ms); dials to the black hole: %d in %s (probes; requests to the down route: %d)",
		realkong, rounds, time.Duration(secs)*time.Second, timeoutMs, downTable(sp, su, sd, timeout),
		sd.p50-su.p50, sd.p99-su.p99, dials, el.Round(time.Second), sd.n)
	// Behaviour, not speed: requests to a dead Redis do not wait on it.
	// At most one request per probe interval (250 ms) may; the machine's
	// own stalls hit the up route as often, so they are allowed for.
	if allowed := su.atLeastTimeout*2 + int(el/(250*time.Millisecond)); sd.atLeastTimeout > allowed {
		t.Errorf("%d requests to the down route took ≥ %s (up route: %d): requests wait on the dead redis", sd.atLeastTimeout, timeout, su.atLeastTimeout)
	}
	if dials > int64(sd.n/10)+int64(el/(100*time.Millisecond)) {
		t.Errorf("%d dials for %d requests in %s: requests wait on the dead redis", dials, sd.n, el)
	}
}
