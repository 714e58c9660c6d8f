package sentinel

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// TestProgramsThroughSentinel: adminsvc (SR_REDIS_SENTINEL_MASTER/ADDRS)
// and the plugin (redis.sentinel_master/sentinel_nodes, through the Kong
// harness) share a Sentinel-managed registry. Before the failover, routes
// registered at adminsvc are listed and instances registered at adminsvc
// are routed to by the plugin. After the primary is killed, adminsvc writes
// succeed again within a bound and the plugin routes to an instance
// registered after the failover.
func TestProgramsThroughSentinel(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 1, Sentinels: 3, Password: "pw"})
	admin := startAdmin(t, map[string]string{
		// Only the password (and db) of the URL are used in Sentinel mode.
		"SR_REDIS_URL":             "redis://:pw@127.0.0.1:1/0",
		"SR_REDIS_SENTINEL_MASTER": sn.MasterName(),
		"SR_REDIS_SENTINEL_ADDRS":  strings.Join(sn.Addrs(), ","),
	})

	// go-proxy API: register and list.
	if st, body := admin.do("POST", "/register", `{"host":"api.example.com","path":"/users","backend":"http://10.0.0.1:8080"}`); st != 200 && st != 201 {
		t.Fatalf("register: %d %s", st, body)
	}
	if st, body := admin.do("GET", "/routes", ""); st != 200 || !strings.Contains(body, `"api.example.com"`) {
		t.Fatalf("routes: %d %s", st, body)
	}

	// The plugin discovers "orders" through the sentinels.
	a, b := newBackend(t, "a"), newBackend(t, "b")
	admin.putInstance(t, "orders", "a", a.addr)
	nodes := []any{}
	for _, addr := range sn.Addrs() {
		h, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		nodes = append(nodes, map[string]any{"host": h, "port": port})
	}
	kong := harness.Start(t, harness.Options{Binary: pluginBin})
	kong.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	if _, err := kong.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kong.AddPlugin(harness.PluginConfig{Service: "orders", Config: map[string]any{
		"registry": "redis", "service": "orders",
		// A generous timeout: these 2-core machines run many tests at once.
		"redis": map[string]any{"sentinel_master": sn.MasterName(), "sentinel_nodes": nodes,
			"password": "pw", "timeout_ms": 500},
	}}); err != nil {
		t.Fatalf("plugin config refused: %v", err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	answers := func(want string) func() (bool, string) {
		return func() (bool, string) {
			resp, err := hc.Get(kong.URL() + "/orders")
			if err != nil {
				return false, err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			got := resp.Header.Get("X-Instance")
			return resp.StatusCode == 200 && got == want, fmt.Sprintf("%d %q %s", resp.StatusCode, got, body)
		}
	}
	waitFor(t, 10*time.Second, "the plugin routing to a", answers("a"))
	events := openEvents(t, admin.url+"/v1/events")
	replicated(t, sn)

	// While there is no primary, the plugin keeps routing from its last
	// snapshot (fail-static) and adminsvc answers promptly, with success or
	// 503, never hanging: probed from the kill until the promotion.
	stopProbe := make(chan struct{})
	probeDone := make(chan probeResult, 1)
	go func() { probeDone <- probe(hc, kong.URL()+"/orders", admin, stopProbe) }()
	killed, promoted := sn.Failover(t, 20*time.Second)
	close(stopProbe)
	pr := <-probeDone
	t.Logf("failover %s -> %s; during it: %d proxied (%v), %d admin writes (%v), slowest admin answer %v",
		killed.Addr, promoted.Addr, pr.proxied, pr.proxyStatus, pr.admin, pr.adminStatus, pr.slowest)
	if pr.proxied == 0 || pr.proxyStatus[200] != pr.proxied {
		t.Errorf("proxying during the failover: %v, want every request answered 200 by a from the snapshot", pr.proxyStatus)
	}
	for st := range pr.adminStatus {
		if st != 200 && st != 201 && st != 503 {
			t.Errorf("adminsvc during the failover answered %d (all: %v), want success or 503", st, pr.adminStatus)
		}
	}
	// adminsvc bounds each store call at 3 s; 6 s leaves room for a loaded machine.
	if pr.slowest > 6*time.Second {
		t.Errorf("slowest adminsvc answer during the failover %v: a dead primary must not hang requests", pr.slowest)
	}

	// adminsvc writes succeed again within a bound once a replica is promoted.
	took := waitFor(t, 15*time.Second, "adminsvc registering through the promoted replica", func() (bool, string) {
		st, body := admin.do("POST", "/register", `{"host":"api.example.com","path":"/after","backend":"http://10.0.0.2:8080"}`)
		return st == 200 || st == 201, fmt.Sprintf("%d %s", st, body)
	})
	t.Logf("adminsvc /register succeeded %v after the promotion", took)
	if st, body := admin.do("GET", "/routes", ""); st != 200 || !strings.Contains(body, `"/users"`) || !strings.Contains(body, `"/after"`) {
		t.Fatalf("routes after failover: %d %s", st, body)
	}
	// A change made after the failover reaches the plugin: b replaces a.
	admin.putInstance(t, "orders", "b", b.addr)
	if st, body := admin.do("DELETE", "/v1/services/orders/instances/a", ""); st != 200 && st != 204 {
		t.Fatalf("delete a: %d %s", st, body)
	}
	took = waitFor(t, 15*time.Second, "the plugin routing to b, registered after the failover", answers("b"))
	t.Logf("the plugin routed to b %v after the change", took)
	if b.hits.Load() == 0 {
		t.Fatal("b never hit")
	}
	// The /v1/events stream opened before the failover (one shared registry
	// Watch in adminsvc) either still delivers changes made after it or ends
	// (the feed lost messages while reconnecting), and then a client that
	// reconnects does get them. Pub/sub drops what is published while it
	// reconnects, so keep changing until an event of this service arrives.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		admin.putInstance(t, "events-after", fmt.Sprint(i), "10.0.0.5:80")
		select {
		case ev, ok := <-events:
			if !ok {
				events = openEvents(t, admin.url+"/v1/events")
				continue
			}
			if strings.Contains(ev, `"events-after"`) {
				t.Logf("/v1/events delivered %s after the failover", ev)
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("/v1/events opened before the failover never delivered a change made after it")
		}
	}
}

// openEvents reads an SSE stream's data lines into a channel (closed when
// the stream ends); the stream is closed at test end.
func openEvents(t testing.TB, url string) <-chan string {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.StatusCode != 200 {
		_ = resp.Body.Close()
		t.Fatalf("GET /v1/events: %d", resp.StatusCode)
	}
	out := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				select {
				case out <- data:
				default: // the test reads only what it needs
				}
			}
		}
	}()
	t.Cleanup(func() { _ = resp.Body.Close(); <-done })
	return out
}

type probeResult struct {
	proxied, admin           int
	proxyStatus, adminStatus map[int]int
	slowest                  time.Duration
}

// probe sends proxied requests (which must come from instance a) and, on
// its own goroutine, adminsvc writes until stop is closed.
func probe(hc *http.Client, proxyURL string, a *admin, stop <-chan struct{}) probeResult {
	r := probeResult{proxyStatus: map[int]int{}, adminStatus: map[int]int{}}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stopped(); i++ {
			start := time.Now()
			st, _ := a.do("POST", "/register", fmt.Sprintf(`{"host":"probe.example.com","path":"/p%d","backend":"http://10.0.0.9:8080"}`, i))
			r.slowest = max(r.slowest, time.Since(start))
			r.admin++
			r.adminStatus[st]++
			time.Sleep(20 * time.Millisecond) // pacing of a bounded probe loop, not a wait for state
		}
	}()
	for !stopped() {
		r.proxied++
		resp, err := hc.Get(proxyURL)
		switch {
		case err != nil:
			r.proxyStatus[-1]++
		case resp.Header.Get("X-Instance") != "a":
			r.proxyStatus[-resp.StatusCode]++ // not a's answer
			_ = resp.Body.Close()
		default:
			r.proxyStatus[resp.StatusCode]++
			_ = resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond) // pacing, as above
	}
	wg.Wait()
	return r
}

// backend is a loopback HTTP server naming itself in X-Instance.
type backend struct {
	addr string
	hits atomic.Int64
}

func newBackend(t testing.TB, id string) *backend {
	b := &backend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Instance", id)
		_, _ = io.WriteString(w, id)
	}))
	t.Cleanup(srv.Close)
	b.addr = srv.Listener.Addr().String()
	return b
}

// admin is one running adminsvc process (clienttest's launcher).
type admin struct {
	t   testing.TB
	url string
	hc  *http.Client
}

func startAdmin(t testing.TB, env map[string]string) *admin {
	t.Helper()
	all := map[string]string{"SR_RECONCILE_INTERVAL": "1s", "SR_LOG_LEVEL": "info", "SR_RATE_LIMIT": "0"}
	for k, v := range env {
		all[k] = v
	}
	a := clienttest.Launch(t, clienttest.LaunchOptions{Env: all, Binary: adminBin})
	return &admin{t: t, url: a.URL, hc: &http.Client{Timeout: 10 * time.Second}}
}

func (a *admin) do(method, path, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a *admin) putInstance(t testing.TB, service, id, addr string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"address": addr, "weight": 1})
	if st, out := a.do("PUT", "/v1/services/"+service+"/instances/"+id, string(body)); st != 200 && st != 201 {
		t.Fatalf("PUT instance %s/%s: %d %s", service, id, st, out)
	}
}
