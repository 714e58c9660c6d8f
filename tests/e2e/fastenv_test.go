package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// fastEnv is a harness Kong with the fast path's catch-all
// (translator.FastPath: service sr-fast-path on an upstream without
// targets, route paths ["/"] without hosts, plugin fast_path: true) in
// front of a real Redis registry. Dedicated routes are added from translator.Translate,
// as the sync writes them.
type fastEnv struct {
	t     testing.TB
	kong  *harness.Kong
	redis *redistest.Server
	store *registry.Store
	rcfg  map[string]any // the plugin's redis record
	http  *http.Client
	scope string // translator.Options.PluginScope of dedicate ("": service)
}

// globalScope puts the sync's global service-registry plugin in Kong
// (plugin scope global): routes dedicated from now on carry none of their own.
func (e *fastEnv) globalScope() {
	e.t.Helper()
	e.scope = translator.PluginScopeGlobal
	p := translator.GlobalPlugin(translator.Options{Redis: e.rcfg})
	if _, err := e.kong.AddPlugin(harness.PluginConfig{ID: p.ID, Config: p.Config}); err != nil {
		e.t.Fatalf("global plugin refused: %v", err)
	}
}

// scopes runs a test in both plugin scopes: the dedicated routes carry
// their own instance (service) or the global one serves them (global).
func scopes(t *testing.T, test func(t *testing.T, global bool)) {
	for _, global := range []bool{false, true} {
		name := map[bool]string{false: "service", true: "global"}[global]
		t.Run(name, func(t *testing.T) { test(t, global) })
	}
}

func newFastEnv(t testing.TB, o harness.Options, catchAll bool) *fastEnv {
	t.Helper()
	e := &fastEnv{t: t, http: &http.Client{Timeout: 20 * time.Second}}
	e.redis = redistest.Start(t, redistest.Options{})
	e.store = registry.NewStore(e.redis.Client(), registry.Options{})
	e.rcfg = map[string]any{"host": "127.0.0.1", "port": e.redis.Port, "timeout_ms": 2000}
	o.Binary = pluginBin
	if o.Workers == 0 {
		o.Workers = 2
	}
	e.kong = harness.Start(t, o)
	e.kong.KeepRequestStats(true)
	if catchAll {
		// The catch-all exactly as the sync writes it.
		svc, up := translator.FastPath(translator.Options{Redis: e.rcfg})
		e.kong.AddUpstream(harness.Upstream{Name: up.Name})
		e.kong.AddService(harness.Service{ID: svc.ID, Name: svc.Name, Protocol: svc.Protocol, Host: svc.Host, Port: svc.Port,
			Retries: harness.Int(svc.Retries)})
		rt := svc.Routes[0]
		if _, err := e.kong.AddRoute(harness.Route{ID: rt.ID, Name: rt.Name, Service: svc.Name, Hosts: rt.Hosts, Paths: rt.Paths,
			Protocols: rt.Protocols, StripPath: harness.Bool(rt.StripPath), PreserveHost: rt.PreserveHost}); err != nil {
			t.Fatal(err)
		}
		p := svc.Plugins[0]
		if _, err := e.kong.AddPlugin(harness.PluginConfig{ID: p.ID, Service: svc.Name, Config: p.Config}); err != nil {
			t.Fatalf("catch-all plugin refused: %v", err)
		}
	}
	return e
}

func (e *fastEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// register is POST /register's store write.
func (e *fastEnv) register(host, path, backend, options string) registry.Route {
	e.t.Helper()
	r := registry.Route{Host: host, Path: path, Backend: backend}
	if options != "" {
		r.Options = json.RawMessage(options)
	}
	stored, _, err := e.store.RegisterRoute(e.ctx(), r)
	if err != nil {
		e.t.Fatal(err)
	}
	return stored
}

// dedicate adds the route's Kong entities as the sync would: what Kong's
// router has once the sync reached it.
func (e *fastEnv) dedicate(r registry.Route) {
	e.t.Helper()
	name := registry.ServiceName(r.Host, r.Path)
	st := translator.Translate([]translator.RouteInput{{Route: r, Service: name}}, translator.Options{Redis: e.rcfg, PluginScope: e.scope})
	if len(st.Services) != 1 || len(st.Errors) != 0 {
		e.t.Fatalf("translation: %+v", st)
	}
	svc, up := st.Services[0], st.Upstreams[0]
	targets := make([]harness.Target, len(up.Targets))
	for i, tg := range up.Targets {
		targets[i] = harness.Target{Target: tg.Target, Weight: harness.Int(tg.Weight)}
	}
	e.kong.AddUpstream(harness.Upstream{Name: up.Name, HostHeader: up.HostHeader, Targets: targets})
	e.kong.AddService(harness.Service{ID: svc.ID, Name: svc.Name, Protocol: svc.Protocol, Host: svc.Host, Port: svc.Port,
		Path: svc.Path, Retries: harness.Int(svc.Retries), ConnectTimeout: svc.ConnectTimeout, ReadTimeout: svc.ReadTimeout,
		WriteTimeout: svc.WriteTimeout})
	rt := svc.Routes[0]
	if _, err := e.kong.AddRoute(harness.Route{ID: rt.ID, Name: rt.Name, Service: svc.Name, Hosts: rt.Hosts, Paths: rt.Paths,
		Protocols: rt.Protocols, StripPath: harness.Bool(rt.StripPath), PreserveHost: rt.PreserveHost}); err != nil {
		e.t.Fatal(err)
	}
	for _, p := range svc.Plugins {
		switch p.Name {
		case translator.PluginRegistry:
			if _, err := e.kong.AddPlugin(harness.PluginConfig{ID: p.ID, Service: svc.Name, Config: p.Config}); err != nil {
				e.t.Fatalf("plugin config refused: %v", err)
			}
		case translator.PluginResponseTransformer:
			add, _ := p.Config["add"].(map[string]any)
			headers, _ := add["headers"].([]string)
			if err := e.kong.AddResponseTransformer(svc.Name, headers); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// answer is what a client and the backend saw of one request.
type answer struct {
	status  int
	body    string
	headers http.Header
	route   string // the route Kong matched
}

// do sends one request with the given Host (and extra headers) and
// returns what came back and which route Kong matched.
func (e *fastEnv) do(host, path string, hdr ...string) answer {
	e.t.Helper()
	before := len(e.kong.Requests())
	req, _ := http.NewRequest("GET", e.kong.URL()+path, nil)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	rs, err := e.kong.WaitRequests(e.ctx(), before+1)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, body: string(b), headers: resp.Header, route: rs[len(rs)-1].Route}
}

// echo is a backend that answers what it received, as JSON.
type echo struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []time.Time
	fail bool // answer 500
}

type echoed struct {
	URI     string      `json:"uri"`
	Host    string      `json:"host"`
	Headers http.Header `json:"headers"`
}

func newEcho(t testing.TB) *echo {
	b := &echo{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits = append(b.hits, time.Now())
		fail := b.fail
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.WriteHeader(500)
		}
		_ = json.NewEncoder(w).Encode(echoed{URI: r.RequestURI, Host: r.Host, Headers: r.Header})
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *echo) url(path string) string { return b.srv.URL + path }

func (b *echo) port() int { return b.srv.Listener.Addr().(*net.TCPAddr).Port }

func (b *echo) setFail(v bool) {
	b.mu.Lock()
	b.fail = v
	b.mu.Unlock()
}

// lastHit is when the backend last received a request (zero: never).
func (b *echo) lastHit() (time.Time, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.hits) == 0 {
		return time.Time{}, 0
	}
	return b.hits[len(b.hits)-1], len(b.hits)
}

// volatile are the response headers that differ between two requests
// whatever the route: dates, latencies, request ids.
var volatile = map[string]bool{"Date": true, "X-Kong-Request-Id": true, "X-Kong-Upstream-Latency": true,
	"X-Kong-Proxy-Latency": true, "X-Kong-Response-Latency": true, "Content-Length": true}

// comparable is an answer with the host names swapped for a placeholder
// and the volatile parts taken out, so two routes' answers compare.
func comparable(a answer, host string) map[string]any {
	h := map[string][]string{}
	for name, v := range a.headers {
		switch {
		case volatile[name]:
		case name == "Ratelimit-Reset" || name == "Retry-After":
			h[name] = []string{"<set>"}
		default:
			h[name] = v
		}
	}
	body := strings.ReplaceAll(a.body, host, "<host>")
	var ec echoed
	if json.Unmarshal([]byte(a.body), &ec) == nil && ec.Headers != nil {
		ec.Headers.Del("X-Kong-Request-Id")
		b, _ := json.Marshal(ec)
		body = strings.ReplaceAll(string(b), host, "<host>")
	}
	return map[string]any{"status": a.status, "body": body, "headers": h}
}

// newHostRequest is a GET with the given Host header.
func newHostRequest(url, host string) (*http.Request, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err == nil {
		req.Host = host
	}
	return req, err
}
