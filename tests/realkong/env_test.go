package realkong

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// backendSrv is one registry instance: a loopback HTTP server counting hits.
type backendSrv struct {
	id   string
	srv  *httptest.Server
	hits atomic.Int64
	// status, when set, is answered instead of 200.
	status atomic.Int64
	host   string
	port   int
	// last is the latest request (URI, headers, arrival), for the tests
	// that compare what the backend saw.
	last atomic.Pointer[seenReq]
}

// seenReq is one request as the backend received it.
type seenReq struct {
	uri    string
	header http.Header
	at     time.Time
}

func newBackend(t testing.TB, id string) *backendSrv {
	b := &backendSrv{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.last.Store(&seenReq{uri: r.RequestURI, header: r.Header.Clone(), at: time.Now()})
		w.Header().Set("X-Instance", id)
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		_, _ = io.WriteString(w, id)
	}))
	t.Cleanup(b.srv.Close)
	h, p, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
	b.host = h
	b.port, _ = strconv.Atoi(p)
	return b
}

func (b *backendSrv) addr() string { return net.JoinHostPort(b.host, strconv.Itoa(b.port)) }

// pluginID is the service-registry plugin entity of the scenarios: a fixed
// id, so a config change keeps the entity (and its Redis counters).
const pluginID = "5e1f0a55-0000-4000-8000-000000000001"

// env is what tests/e2e's env is, on a real DB-less Kong: Redis, registry
// store, backends, the "orders" service whose own host is a dead port (only
// the plugin's set_target reaches a backend), and the plugin on it.
type env struct {
	t     *testing.T
	kong  *kong
	redis *redistest.Server
	store *registry.Store
	bes   map[string]*backendSrv
	http  *http.Client
	cfg   map[string]any // the plugin's config
	// extra entities pushed with every config (services, upstreams).
	extraServices, extraUpstreams []map[string]any
}

type envOptions struct {
	instances map[string]int // id → weight, registered under service "orders"
	config    map[string]any // plugin config; nil → discovery config
	redis     redistest.Options
}

// discoveryConfig is the plugin config for Redis discovery of "orders".
func discoveryConfig(r *redistest.Server) map[string]any {
	return map[string]any{
		"registry": "redis",
		"service":  "orders",
		// A generous Redis timeout: these 2-core machines run many tests at once.
		"redis": map[string]any{"host": "127.0.0.1", "port": r.Port, "timeout_ms": 500},
	}
}

func newEnv(t *testing.T, k *kong, o envOptions) *env {
	t.Helper()
	if isDB(k.mode) {
		t.Fatalf("plugin scenarios push declarative config: DB-less Kong only")
	}
	e := &env{t: t, kong: k, bes: map[string]*backendSrv{}, http: &http.Client{Timeout: 20 * time.Second}}
	e.redis = redistest.Start(t, o.redis)
	e.store = registry.NewStore(e.redis.Client(), registry.Options{})
	for id, w := range o.instances {
		e.bes[id] = newBackend(t, id)
		e.put(id, w)
	}
	e.cfg = o.config
	if e.cfg == nil {
		e.cfg = discoveryConfig(e.redis)
	}
	if err := e.push(); err != nil {
		t.Fatalf("plugin config refused: %v", err)
	}
	return e
}

// push sends the scenario's whole declarative config.
func (e *env) push() error {
	e.t.Helper()
	return e.pushTo(e.kong)
}

// pushTo sends the scenario's config to one Kong node: another DB-less node
// gets the same entities, the plugin with the same id, as nodes of one
// cluster share their database.
func (e *env) pushTo(k *kong) error {
	e.t.Helper()
	services := []map[string]any{{
		"name": "orders", "host": "127.0.0.1", "port": 9, "retries": 0,
		"routes":  []map[string]any{{"name": "orders", "paths": []string{"/orders"}}},
		"plugins": []map[string]any{{"id": pluginID, "name": "service-registry", "config": e.cfg}},
	}}
	return k.push(e.t, append(services, e.extraServices...), e.extraUpstreams)
}

// updatePlugin replaces the plugin's config.
func (e *env) updatePlugin(cfg map[string]any) error {
	e.cfg = cfg
	return e.push()
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) put(id string, weight int) {
	e.t.Helper()
	if _, err := e.store.PutInstance(e.ctx(), "orders", registry.Instance{ID: id, Address: e.bes[id].addr(), Weight: weight}); err != nil {
		e.t.Fatal(err)
	}
}

// get sends one request through Kong and returns status, body and headers.
func (e *env) get(path string) (int, string, http.Header) {
	e.t.Helper()
	return getURL(e.t, e.http, e.kong.proxy+path, "")
}

func getURL(t testing.TB, c *http.Client, url, host string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b), resp.Header
}

// load sends n requests with c workers and returns how many each backend
// answered (by X-Instance) and the statuses seen.
func (e *env) load(n, c int, path string) (map[string]int, map[int]int) {
	e.t.Helper()
	var mu sync.Mutex
	byInst, byStatus := map[string]int{}, map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := e.http.Get(e.kong.proxy + path)
				if err != nil {
					mu.Lock()
					byStatus[-1]++
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				mu.Lock()
				byStatus[resp.StatusCode]++
				if inst := resp.Header.Get("X-Instance"); inst != "" {
					byInst[inst]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return byInst, byStatus
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, d, what, cond)
}

func message(body string) string {
	var m struct{ Message string }
	_ = json.Unmarshal([]byte(body), &m)
	return m.Message
}
