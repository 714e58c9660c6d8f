package realkong

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// The harness (tests/harness) set up as this Kong version (Version,
// FailOpen) and the real Kong get the same entities and the same requests;
// their answers must agree: status, body and headers, with request ids and
// latencies normalised. A disagreement is a harness bug (KONG-NOTES.md).
func TestHarnessAgreesWithKong(t *testing.T) {
	eachKong(t, modeDBLess, func(t *testing.T, k *kong) {
		rs := redistest.Start(t, redistest.Options{})
		store := registry.NewStore(rs.Client(), registry.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, closed := newBackend(t, "a"), newBackend(t, "closed")
		closed.srv.Close() // registered, nothing listens
		for svc, b := range map[string]*backendSrv{"proxied": a, "maint": a, "refused": closed} {
			if _, err := store.PutInstance(ctx, svc, registry.Instance{ID: b.id, Address: b.addr(), Weight: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.SetMaintenance(ctx, "maint", registry.Maintenance{Enabled: true, Message: "down for upgrade"}); err != nil {
			t.Fatal(err)
		}
		redisCfg := map[string]any{"host": "127.0.0.1", "port": rs.Port, "timeout_ms": 500}
		disco := func(service string, extra map[string]any) map[string]any {
			c := map[string]any{"registry": "redis", "service": service, "redis": redisCfg}
			for n, v := range extra {
				c[n] = v
			}
			return c
		}
		twins := []twinService{
			{name: "proxied", plugin: disco("proxied", nil)},
			{name: "dead"},
			{name: "maint", plugin: disco("maint", nil)},
			{name: "nosvc", plugin: disco("nosvc", nil)},
			{name: "limited", plugin: disco("proxied", map[string]any{
				"rate_limit": map[string]any{"enabled": true, "requests_per_min": 1, "burst": 0, "limit_by": "ip"}})},
			{name: "refused", plugin: disco("refused", nil)},
			{name: "kongup", upstream: a.addr(), plugin: map[string]any{"registry": "kong"}},
		}
		hk := harness.Start(t, harness.Options{Binary: pluginBin, Version: k.version, FailOpen: k.failOpen()})
		var services, upstreams []map[string]any
		for _, tw := range twins {
			s, u := tw.declarative()
			services = append(services, s)
			if u != nil {
				upstreams = append(upstreams, u)
			}
			tw.addTo(t, hk)
		}
		if err := k.push(t, services, upstreams); err != nil {
			t.Fatal(err)
		}
		// Path, then request headers: Kong picks its error format from
		// Accept (and, for a failed upstream, the request's Content-Type).
		probes := [][]string{{"/nothing"}, {"/nothing", "Accept", "text/html"}, {"/nothing", "Accept", "application/xml;q=0.5, text/plain"},
			{"/proxied/x"}, {"/dead"}, {"/dead", "Accept", "application/json"}, {"/dead", "Content-Type", "application/xml"},
			{"/dead", "Accept", "text/*"}, {"/maint"}, {"/nosvc"}, {"/limited"}, {"/limited"}, {"/refused"}, {"/kongup/y"}}
		c := &http.Client{Timeout: 20 * time.Second}
		var real, fake []string
		for _, p := range probes {
			real = append(real, normalised(t, c, k.proxy, p))
		}
		for _, p := range probes {
			fake = append(fake, normalised(t, c, hk.URL(), p))
		}
		for i, p := range probes {
			if real[i] != fake[i] {
				t.Errorf("GET %v:\nkong %s: %s\nharness:     %s", p, k.version, real[i], fake[i])
			}
		}
	})
}

// twinService is one Kong service with a route /<name> and, when plugin is
// set, the service-registry plugin; its host is a dead port or an upstream
// with one target.
type twinService struct {
	name     string
	upstream string // target of the service's upstream; empty: 127.0.0.1:9
	plugin   map[string]any
}

func (tw twinService) declarative() (service, upstream map[string]any) {
	service = map[string]any{"name": tw.name, "host": "127.0.0.1", "port": 9, "retries": 0,
		"routes": []map[string]any{{"name": tw.name, "paths": []string{"/" + tw.name}}}}
	if tw.upstream != "" {
		service["host"], service["port"] = tw.name+"-up", 80
		upstream = map[string]any{"name": tw.name + "-up", "targets": []map[string]any{{"target": tw.upstream}}}
	}
	if tw.plugin != nil {
		service["plugins"] = []map[string]any{{"name": "service-registry", "config": tw.plugin}}
	}
	return service, upstream
}

func (tw twinService) addTo(t *testing.T, hk *harness.Kong) {
	t.Helper()
	s := harness.Service{Name: tw.name, Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)}
	if tw.upstream != "" {
		hk.AddUpstream(harness.Upstream{Name: tw.name + "-up", Targets: []harness.Target{{Target: tw.upstream}}})
		s.Host, s.Port = tw.name+"-up", 80
	}
	hk.AddService(s)
	if _, err := hk.AddRoute(harness.Route{Name: tw.name, Service: tw.name, Paths: []string{"/" + tw.name}}); err != nil {
		t.Fatal(err)
	}
	if tw.plugin != nil {
		if _, err := hk.AddPlugin(harness.PluginConfig{Service: tw.name, Config: tw.plugin}); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	requestID = regexp.MustCompile(`[0-9a-f]{32}`)
	// skipped: set by the HTTP stack on every response, not by Kong.
	skipped = map[string]bool{"Date": true, "Connection": true, "Keep-Alive": true, "Transfer-Encoding": true}
	// volatile: only their presence is compared.
	volatile = map[string]bool{"X-Kong-Response-Latency": true, "X-Kong-Upstream-Latency": true,
		"X-Kong-Proxy-Latency": true, "X-Kong-Request-Id": true, "Ratelimit-Reset": true, "Retry-After": true}
)

// normalised is one response as "status body | headers" with request ids
// and latencies replaced, headers sorted.
func normalised(t *testing.T, c *http.Client, base string, probe []string) string {
	t.Helper()
	req, err := http.NewRequest("GET", base+probe[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i+1 < len(probe); i += 2 {
		req.Header.Set(probe[i], probe[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %v: %v", probe, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return shapeOf(resp.StatusCode, string(raw), resp.Header, nil)
}

// shapeOf is one answer as normalised prints it; headers named in masked
// are compared by presence only, as the volatile ones.
func shapeOf(status int, body string, h http.Header, masked map[string]bool) string {
	var hs []string
	for name, vs := range h {
		switch {
		case skipped[name]:
		case volatile[name] || masked[name]:
			hs = append(hs, name+": *")
		case name == "Server" && (vs[0] == "nginx" || strings.HasPrefix(vs[0], "openresty")):
			// nginx's own token on its error pages (3.4): the build's, not Kong's.
			hs = append(hs, name+": <nginx>")
		default:
			hs = append(hs, name+": "+strings.Join(vs, ","))
		}
	}
	sort.Strings(hs)
	return fmt.Sprintf("%d %q | %s", status, requestID.ReplaceAllString(body, "<id>"), strings.Join(hs, "; "))
}

// Plugin server killed: the harness (FailOpen for 3.4, Kong 3.9's 500
// otherwise) answers what the real Kong answers while its plugin server is
// down: 3.4 proxies through the service's own upstream, 3.9 answers 500.
func TestHarnessAgreesPluginDown(t *testing.T) {
	eachKong(t, modeDBLess, func(t *testing.T, k *kong) {
		rs := redistest.Start(t, redistest.Options{})
		store := registry.NewStore(rs.Client(), registry.Options{})
		a, static := newBackend(t, "a"), newBackend(t, "static")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := store.PutInstance(ctx, "down", registry.Instance{ID: a.id, Address: a.addr(), Weight: 1}); err != nil {
			t.Fatal(err)
		}
		tw := twinService{name: "down", upstream: static.addr(), plugin: map[string]any{"registry": "redis", "service": "down",
			"redis": map[string]any{"host": "127.0.0.1", "port": rs.Port, "timeout_ms": 500}}}
		svc, up := tw.declarative()
		if err := k.push(t, []map[string]any{svc}, []map[string]any{up}); err != nil {
			t.Fatal(err)
		}
		hk := harness.Start(t, harness.Options{Binary: pluginBin, Version: k.version, FailOpen: k.failOpen(), RespawnDelay: time.Hour})
		tw.addTo(t, hk)
		c := &http.Client{Timeout: 20 * time.Second}
		probe := []string{"/down/x"}
		// down is the plugin-down answer: 3.4 the upstream's backend, 3.9 a 500.
		down := func(base string) string {
			var got string
			waitFor(t, 10*time.Second, "the plugin-down answer from "+base, func() bool {
				got = normalised(t, c, base, probe)
				return strings.HasPrefix(got, "500 ") || strings.Contains(got, "X-Instance: static")
			})
			return got
		}
		for _, base := range []string{k.proxy, hk.URL()} {
			if got := normalised(t, c, base, probe); !strings.Contains(got, "X-Instance: a") {
				t.Fatalf("plugin up, %s: %s", base, got)
			}
		}
		// Kill once the probes' log phases are over, probe once the process
		// is gone (its sockets closed): an event racing the kill fails with
		// "closed", which resets the instance, and both Kong and the harness
		// answer otherwise from then on (KONG-NOTES.md). The real Kong's log
		// timer ran long before the harness's probe and its log phase ended.
		if err := hk.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		// On 3.4 (fail open) an event racing the kill is the one way to a
		// 500: Kong resets the instance, the restart fails and raises. Seen
		// under a CPU hog, where the real Kong's log timer for the probes
		// above still ran at the kill. Then the supervisor's restart is
		// awaited and the kill tried again (at most 3 times): a Kong that
		// always answered 500 still fails the test.
		var real string
		for attempt := 1; ; attempt++ {
			pid := k.pluginPID()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitDead(t, pid)
			real = down(k.proxy)
			if !k.failOpen() || !strings.HasPrefix(real, "500 ") || attempt == 3 {
				break
			}
			t.Logf("kong %s, kill %d: an event raced it (%s); again once the plugin server is back", k.version, attempt, real)
			waitFor(t, 10*time.Second, "the real plugin server back", func() bool {
				return strings.Contains(normalised(t, c, k.proxy, probe), "X-Instance: a")
			})
		}
		pid := hk.Process().PID()
		if err := hk.Process().Kill(); err != nil {
			t.Fatal(err)
		}
		waitDead(t, pid)
		fake := down(hk.URL())
		// Still, a log event in flight at the kill can reset the instance on
		// either side (seen at load 40 in the harness): both 500s are Kong's.
		if real != fake && pluginDown500.ReplaceAllString(real, "<500>") == pluginDown500.ReplaceAllString(fake, "<500>") {
			t.Logf("plugin server down: kong and harness answered Kong's two 500s:\n%s\n%s\nharness log:\n%s", real, fake, hk.Logs())
			fake = real
		}
		if real != fake {
			t.Errorf("plugin server down:\nkong %s: %s\nharness:     %s", k.version, real, fake)
		}
		want := "500 "
		if k.failOpen() {
			want = "200 "
		}
		if !strings.HasPrefix(real, want) {
			t.Errorf("kong %s with its plugin server down: %s, want %s", k.version, real, want)
		}
		// The real Kong's supervisor restarts it (1 s): the plugin picks again.
		waitFor(t, 10*time.Second, "the real plugin server back", func() bool {
			return strings.Contains(normalised(t, c, k.proxy, probe), "X-Instance: a")
		})
	})
}

// pluginDown500 matches the two 500s Kong 3.9 gives while the plugin
// server is down: kong.response.error's template (connection refused) and
// the runloop's answer to the Lua error a failed instance start raises.
var pluginDown500 = regexp.MustCompile(`^500 "(\{\\n  \\"message\\":\\"An unexpected error occurred\\",\\n  \\"request_id\\":\\"<id>\\"\\n\}|\{\\"message\\":\\"An unexpected error occurred\\"\})" \| Content-Length: \d+;`)

// waitDead waits until pid has exited (gone, or a zombie not yet reaped).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("pid %d to exit", pid), func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// state is the field after the ")" that ends the command name
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(f) == 0 || f[0] == "Z" || f[0] == "X"
	})
}
