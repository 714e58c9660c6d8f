package e2e

import (
	"context"
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
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// pluginBin is ./plugins/service-registry built once for the whole package;
// its file name is the plugin name, as Kong requires.
var pluginBin string

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) (err error) {
		pluginBin, err = testbin.Build(dir, "./plugins/service-registry", "service-registry")
		return err
	})
}

// backendSrv is one registry instance: a loopback HTTP server counting hits.
type backendSrv struct {
	id   string
	srv  *httptest.Server
	hits atomic.Int64
	// status, when set, is answered instead of 200.
	status atomic.Int64
	host   string
	port   int
}

func newBackend(t testing.TB, id string) *backendSrv {
	b := &backendSrv{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
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

// env is one Kong (harness) + Redis + registry store + backends.
type env struct {
	t     testing.TB
	kong  *harness.Kong
	redis *redistest.Server
	store *registry.Store
	bes   map[string]*backendSrv
	pid   string // plugin entity id
	http  *http.Client
}

type envOptions struct {
	instances map[string]int // id → weight, registered under service "orders"
	config    map[string]any // plugin config; nil → discovery config
	kong      harness.Options
	redis     redistest.Options
}

// discoveryConfig is the plugin config for Redis discovery of "orders".
func discoveryConfig(r *redistest.Server) map[string]any {
	return map[string]any{
		"registry": "redis",
		"service":  "orders",
		// A generous Redis timeout (it also bounds a first snapshot load and each
		// rate-limit call): these 2-core machines run many tests at once, and
		// 200 ms was seen to run out under -race at load 30+.
		"redis": map[string]any{"host": "127.0.0.1", "port": r.Port, "timeout_ms": 2000},
	}
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, bes: map[string]*backendSrv{}, http: &http.Client{Timeout: 20 * time.Second}}
	e.redis = redistest.Start(t, o.redis)
	e.store = registry.NewStore(e.redis.Client(), registry.Options{})
	o.kong.Binary = pluginBin
	if o.kong.Workers == 0 {
		// nginx worker_processes = auto on these 2-core machines.
		o.kong.Workers = 2
	}
	e.kong = harness.Start(t, o.kong)
	// The Kong service points at a port nobody listens on: only the
	// plugin's set_target can reach a backend.
	e.kong.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	if _, err := e.kong.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}}); err != nil {
		t.Fatal(err)
	}
	for id, w := range o.instances {
		e.bes[id] = newBackend(t, id)
		e.put(id, w)
	}
	cfg := o.config
	if cfg == nil {
		cfg = discoveryConfig(e.redis)
	}
	id, err := e.kong.AddPlugin(harness.PluginConfig{Service: "orders", Config: cfg})
	if err != nil {
		t.Fatalf("plugin config refused: %v", err)
	}
	e.pid = id
	return e
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
	resp, err := e.http.Get(e.kong.URL() + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
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
				resp, err := e.http.Get(e.kong.URL() + path)
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
