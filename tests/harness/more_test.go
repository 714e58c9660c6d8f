package harness

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// The plugin server forgets an instance (as after a restart): go-pdk answers
// "no plugin instance" by closing the connection, Kong sees "closed", resets
// its instances, starts a new one and retries the event.
func TestNoPluginInstanceRetry(t *testing.T) {
	be, _ := backend(t)
	k, id := setup(t, Options{}, be.URL, map[string]any{"mode": "getters"})
	if resp, _ := get(t, k.URL()+"/t"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	lastRequest(t, k, 1) // its log event is done: nothing else uses the instance
	w := k.workers[0]
	w.instMu.Lock()
	inst := w.instances[id]
	w.instMu.Unlock()
	// Close it behind Kong's back, on the plugin's own socket.
	if _, err := w.rpc.call(&pb.RpcCall{Call: &pb.RpcCall_CmdCloseInstance{
		CmdCloseInstance: &pb.CmdCloseInstance{InstanceId: inst.id},
	}}, nil); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, k.URL()+"/t")
	if resp.StatusCode != 200 || resp.Header.Get("X-Path") != "/t" || k.InstancesStarted() != 2 {
		t.Fatalf("status %d, X-Path %q, started %d", resp.StatusCode, resp.Header.Get("X-Path"), k.InstancesStarted())
	}
	st := lastRequest(t, k, 2)
	if st.Events["access"] != 2 {
		t.Fatalf("want the access event sent twice (failed, retried): %v", st)
	}
}

// Concurrent requests use several plugin connections from the pool.
func TestConnectionPool(t *testing.T) {
	be, _ := backend(t)
	k, _ := setup(t, Options{}, be.URL, map[string]any{"mode": "getters"})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if resp, _ := get(t, k.URL()+"/t"); resp.StatusCode != 200 {
					t.Error(resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	if n := k.ConnectionsOpened(); n < 2 || n > 80 {
		t.Fatalf("%d connections for 80 concurrent requests: want a pool (several, reused)", n)
	}
}

// Without set_target: an upstream's targets in weighted round robin, Host
// is the target host:port (or the upstream's host_header), preserve_host
// keeps the client's Host.
func TestUpstreamTargetsAndHost(t *testing.T) {
	var mu sync.Mutex
	hosts := map[string]int{}
	hits := map[string]int{}
	mk := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hosts[r.Host]++
			hits[name]++
			mu.Unlock()
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	a, b := mk("a"), mk("b")
	k := Start(t, Options{Binary: srtestBin})
	k.AddUpstream(Upstream{Name: "up", Targets: []Target{{Target: a, Weight: Int(100)}, {Target: b, Weight: Int(300)}}})
	k.AddService(Service{Name: "s", Host: "up"})
	if _, err := k.AddRoute(Route{Name: "r", Service: "s", Paths: []string{"/u"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddRoute(Route{Name: "p", Service: "s", Paths: []string{"/p"}, PreserveHost: true}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		get(t, k.URL()+"/u")
	}
	mu.Lock()
	if hits["a"] != 10 || hits["b"] != 30 {
		t.Errorf("weights 100/300 gave %v", hits)
	}
	ha, _, _ := net.SplitHostPort(a)
	_, pa, _ := net.SplitHostPort(a)
	if hosts[ha+":"+pa] != 10 {
		t.Errorf("Host headers %v, want target host:port", hosts)
	}
	mu.Unlock()
	get(t, k.URL()+"/p", "Host", "client.example:1234")
	mu.Lock()
	defer mu.Unlock()
	if hosts["client.example:1234"] != 1 {
		t.Errorf("preserve_host: Host headers %v", hosts)
	}
}

// Each worker has its own instance cache: with 2 workers the same config
// runs as 2 instances in the plugin, as in a real Kong.
func TestWorkersHaveOwnInstances(t *testing.T) {
	be, _ := backend(t)
	k, _ := setup(t, Options{Workers: 2}, be.URL, map[string]any{"mode": "getters"})
	for i := 0; i < 4; i++ {
		if resp, _ := get(t, k.URL()+"/t"); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
	}
	if k.InstancesStarted() != 2 {
		t.Fatalf("%d instances started for 2 workers", k.InstancesStarted())
	}
}

// Kong refuses a plugin whose VERSION is not x.y.z at start (seen on real
// Kong 3.4.2 and 3.9.3, tests/KONG-NOTES.md); the harness refuses it the
// same way, with Kong's message.
func TestRefusesVersionDevAsKongDoes(t *testing.T) {
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "srtest")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=dev", "-o", bin, "./tests/harness/testdata/srtest")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // testbin.Build's configuration: shared build cache
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, err = start(t, Options{Binary: bin})
	const want = `error loading plugin schemas: on plugin 'srtest': Plugin "srtest" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "dev".`
	if err == nil || err.Error() != want {
		t.Fatalf("harness start: %v\nwant Kong's error: %s", err, want)
	}
}

// A plugin binary that exits before printing its dump (the service-registry
// plugin stamped with a bad version does) fails as Kong fails on empty
// query output.
func TestRefusesAnEmptyDump(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "srtest")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho refusing >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := start(t, Options{Binary: bin})
	if err == nil || !strings.HasPrefix(err.Error(), "failed loading external plugins: failed decoding plugin info: Expected value but found T_END at character 1") || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("harness start: %v", err)
	}
}

// set_target makes the target host the upstream Host even on a route with
// preserve_host (pdk/service.lua: ngx.var.upstream_host = host); a
// set_header("host") after it wins, one before it loses: one variable,
// last write wins.
func TestSetTargetHostOverPreserveHost(t *testing.T) {
	be, seenReqs := backend(t)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(be.URL, "http://"))
	p, _ := strconv.Atoi(port)
	k := Start(t, Options{Binary: srtestBin})
	k.AddService(Service{Name: "svc", Host: "127.0.0.1", Port: 9, Retries: Int(0)})
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"target", map[string]any{"mode": "target", "host": host, "port": p}, host},
		{"after", map[string]any{"mode": "target", "host": host, "port": p, "upstream_host": "set.example"}, "set.example"},
		{"before", map[string]any{"mode": "host_then_target", "host": host, "port": p, "upstream_host": "set.example"}, host},
	} {
		if _, err := k.AddRoute(Route{Name: tc.name, Service: "svc", Paths: []string{"/" + tc.name}, PreserveHost: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := k.AddPlugin(PluginConfig{Route: tc.name, Config: tc.cfg}); err != nil {
			t.Fatal(err)
		}
		resp, _ := get(t, k.URL()+"/"+tc.name, "Host", "client.example:1234")
		seenReqs.mu.Lock()
		got := seenReqs.reqs[len(seenReqs.reqs)-1].Host
		seenReqs.mu.Unlock()
		if resp.StatusCode != 200 || got != tc.want {
			t.Errorf("%s: status %d, upstream Host %q, want %q", tc.name, resp.StatusCode, got, tc.want)
		}
	}
}
