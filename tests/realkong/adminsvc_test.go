package realkong

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// svc is one adminsvc process syncing a real Kong (as tests/adminsvc runs
// it against the fake), started by clienttest's launcher; it is stopped
// gracefully (SIGTERM) at test end, so it stops writing to the shared Kong
// before the next test resets it.
type svc struct {
	t    testing.TB
	URL  string
	Logs *testbin.Buffer
	proc *clienttest.Adminsvc
	// scope is the plugin scope it writes (translator.PluginScope*), ""
	// when the test does not say.
	scope string
}

func startSvc(t testing.TB, k *kong, redisURL string, env map[string]string) *svc {
	t.Helper()
	s := startSvcVia(t, k.admin, redisURL, env)
	s.scope = pluginScope(env, k.mode)
	return s
}

// pluginScope is the plugin scope adminsvc runs with: SR_PLUGIN_SCOPE
// (default service; auto: global in DB mode, service in DB-less mode).
func pluginScope(env map[string]string, mode string) string {
	switch env["SR_PLUGIN_SCOPE"] {
	case translator.PluginScopeGlobal:
		return translator.PluginScopeGlobal
	case translator.PluginScopeAuto:
		if isDB(mode) {
			return translator.PluginScopeGlobal
		}
	}
	return translator.PluginScopeService
}

// startSvcVia is startSvc with adminsvc talking to Kong's Admin API at
// adminURL (a gate in front of Kong's, say).
func startSvcVia(t testing.TB, adminURL, redisURL string, env map[string]string) *svc {
	t.Helper()
	vars := map[string]string{
		"SR_RECONCILE_INTERVAL": "1s",
		"SR_LOG_LEVEL":          "info",
		"SR_RATE_LIMIT":         "0",
		// The plugin configs adminsvc writes otherwise carry the plugin's
		// default timeout_ms (20), which also bounds a first snapshot load:
		// on a loaded machine that fails requests these tests are not about.
		"SR_PLUGIN_REDIS_TIMEOUT_MS": "500",
	}
	for n, v := range env {
		vars[n] = v
	}
	a := clienttest.Launch(t, clienttest.LaunchOptions{RedisURL: redisURL, KongURL: adminURL, Env: vars, Binary: adminsvcBin})
	return &svc{t: t, URL: a.URL, Logs: a.Output(), proc: a}
}

type resp struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (s *svc) do(method, path, body string) resp {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer hr.Body.Close()
	raw, _ := io.ReadAll(hr.Body)
	r := resp{Status: hr.StatusCode, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// metric reads one unlabelled value from /metrics.
func (s *svc) metric(name string) float64 {
	s.t.Helper()
	for _, line := range strings.Split(s.do("GET", "/metrics", "").Raw, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	s.t.Fatalf("metric %s missing", name)
	return 0
}

// waitReconciles waits until n more reconciles have run.
func (s *svc) waitReconciles(n int) {
	s.t.Helper()
	start := s.metric("sr_reconcile_runs_total")
	waitFor(s.t, 20*time.Second, fmt.Sprintf("%d reconciles", n), func() bool {
		return s.metric("sr_reconcile_runs_total") >= start+float64(n)
	})
}

// managed are the entities adminsvc writes for registered routes: tagged
// as ours, the fast path's catch-all and the global plugin aside (they
// belong to no route).
func managed(list []map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range list {
		tags, _ := e["tags"].([]any)
		ours, own := false, false
		for _, tg := range tags {
			ours = ours || tg == translator.TagManaged
			own = own || tg == translator.TagFastPath || tg == translator.TagGlobal
		}
		if ours && !own {
			out = append(out, e)
		}
	}
	return out
}

// agree reports whether Kong holds exactly the registry's routes: one
// managed service, route, upstream and (plugin scope service)
// service-registry plugin per registered route, or the global plugin (tests/adminsvc's agree, reading the real Admin API).
func agree(t testing.TB, s *svc, k *kong) error {
	r := s.do("GET", "/routes", "")
	want := map[string]bool{}
	routes, _ := r.Body["routes"].([]any)
	for _, x := range routes {
		m := x.(map[string]any)
		want[registry.ServiceName(m["host"].(string), m["path"].(string))] = true
	}
	for _, kind := range []string{"services", "routes"} {
		got := map[string]int{}
		for _, e := range managed(k.list(t, kind)) {
			got[e["name"].(string)]++
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s: kong has %d managed, registry %d", kind, len(got), len(want))
		}
		for n, c := range got {
			if !want[n] || c != 1 {
				return fmt.Errorf("%s: %s in kong %d times, in registry %v", kind, n, c, want[n])
			}
		}
	}
	if n := len(managed(k.list(t, "upstreams"))); n != len(want) {
		return fmt.Errorf("upstreams: %d for %d routes", n, len(want))
	}
	n := 0
	for _, p := range managed(k.list(t, "plugins")) {
		if p["name"] == "service-registry" {
			n++
		}
	}
	want1 := len(want) // one per route's service
	if s.scope == translator.PluginScopeGlobal {
		want1 = 0 // the global one (globalPlugin) serves them all
	}
	if n != want1 {
		return fmt.Errorf("service-registry plugins on services: %d for %d routes (plugin scope %s)", n, len(want), s.scope)
	}
	if g := globalPlugin(t, k); (g != nil) != (s.scope == translator.PluginScopeGlobal) {
		return fmt.Errorf("global plugin %v in plugin scope %s", g != nil, s.scope)
	}
	return nil
}

// globalPlugin is adminsvc's global service-registry plugin, nil when
// Kong has none.
func globalPlugin(t testing.TB, k *kong) map[string]any {
	p, _ := k.find(t, "plugins", translator.GlobalPluginID)
	return p
}

func waitAgree(t testing.TB, s *svc, k *kong, timeout time.Duration) {
	t.Helper()
	var last error
	deadline := time.Now().Add(timeout)
	for {
		if last = agree(t, s, k); last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kong and registry disagree after %s: %v\nadminsvc:\n%s", timeout, last, tail(s.Logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proxyClient sends requests through Kong's proxy with a Host header.
var proxyClient = &http.Client{Timeout: 20 * time.Second}

// routed waits until host+path through Kong reaches backend b and returns
// how long that took from start (register → routed).
func routed(t testing.TB, k *kong, host, path string, b *backendSrv, start time.Time, d time.Duration) time.Duration {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("%s%s routed to %s", host, path, b.id), func() bool {
		status, _, h := getURL(t, proxyClient, k.proxy+path, host)
		return status == 200 && h.Get("X-Instance") == b.id
	})
	return time.Since(start)
}

// unrouted waits until Kong answers 404 for host+path (no route matched).
func unrouted(t testing.TB, k *kong, host, path string, d time.Duration) {
	t.Helper()
	var body string
	waitFor(t, d, host+path+" answered 404 by kong", func() bool {
		var status int
		status, body, _ = getURL(t, proxyClient, k.proxy+path, host)
		return status == 404
	})
	if !strings.Contains(message(body), "no Route matched") {
		t.Fatalf("404 for %s%s: %s", host, path, body)
	}
}

// timings collects register → routed per Kong version and mode, printed
// by the tests that measure them.
func logRouted(t testing.TB, k *kong, what string, d time.Duration) {
	t.Logf("register → routed (%s) on kong %s %s: %s", what, k.version, k.mode, d.Round(time.Millisecond))
}
