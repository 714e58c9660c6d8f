package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// fakeKong records the PDK calls a handler makes.
type fakeKong struct {
	calls     []string
	host      string
	port      int
	status    int
	body      string
	svcID     string
	svcName   string
	routeID   string
	targetErr error
	// upstreamHost is the Host sent upstream: set_target's host, unless
	// set_header("host") came after it (Kong: ngx.var.upstream_host).
	upstreamHost string

	ip, consumer string
	reqHeaders   map[string]string
	serialized   string
	headers      map[string][]string // set_headers
	exitHeaders  map[string][]string

	path, upstreamPath, scheme string
	vars, shared               map[string]string
}

func (f *fakeKong) RequestPath() (string, error) {
	f.calls = append(f.calls, "kong.request.get_path")
	return f.path, nil
}

func (f *fakeKong) SetPath(p string) error {
	f.calls = append(f.calls, "kong.service.request.set_path")
	f.upstreamPath = p
	return nil
}

func (f *fakeKong) SetScheme(s string) error {
	f.calls = append(f.calls, "kong.service.request.set_scheme")
	f.scheme = s
	return nil
}

func (f *fakeKong) NginxVar(name string) (string, error) {
	f.calls = append(f.calls, "kong.nginx.get_var")
	return f.vars[name], nil
}

func (f *fakeKong) SetShared(k, v string) error {
	f.calls = append(f.calls, "kong.ctx.shared.set")
	if f.shared == nil {
		f.shared = map[string]string{}
	}
	f.shared[k] = v
	return nil
}

func (f *fakeKong) GetShared(k string) (string, error) {
	f.calls = append(f.calls, "kong.ctx.shared.get")
	return f.shared[k], nil
}

func (f *fakeKong) SetTarget(host string, port int) error {
	f.calls = append(f.calls, "kong.service.set_target")
	f.host, f.port, f.upstreamHost = host, port, host
	return f.targetErr
}

func (f *fakeKong) SetUpstreamHost(host string) error {
	f.calls = append(f.calls, "kong.service.request.set_header")
	f.upstreamHost = host
	return nil
}

func (f *fakeKong) Exit(status int, body []byte) {
	f.calls = append(f.calls, "kong.response.exit")
	f.status, f.body = status, string(body)
}

func (f *fakeKong) ExitHeaders(status int, body []byte, h map[string][]string) {
	f.calls = append(f.calls, "kong.response.exit")
	f.status, f.body, f.exitHeaders = status, string(body), h
}

func (f *fakeKong) SetHeaders(h map[string][]string) error {
	f.calls = append(f.calls, "kong.response.set_headers")
	f.headers = h
	return nil
}

func (f *fakeKong) ForwardedIP() (string, error) {
	f.calls = append(f.calls, "kong.client.get_forwarded_ip")
	return f.ip, nil
}

func (f *fakeKong) ConsumerID() (string, error) {
	f.calls = append(f.calls, "kong.client.get_consumer")
	return f.consumer, nil
}

func (f *fakeKong) RequestHeader(name string) (string, error) {
	f.calls = append(f.calls, "kong.request.get_header")
	return f.reqHeaders[name], nil
}

func (f *fakeKong) Serialize() (string, error) {
	f.calls = append(f.calls, "kong.log.serialize")
	return f.serialized, nil
}

func (f *fakeKong) RouterService() (string, string, error) {
	f.calls = append(f.calls, "kong.router.get_service")
	return f.svcID, f.svcName, nil
}

func (f *fakeKong) RouterRoute() (string, string, error) {
	f.calls = append(f.calls, "kong.router.get_route")
	return f.routeID, f.svcID, nil
}

type fixture struct {
	srv   *redistest.Server
	store *registry.Store
}

func newFixture(t *testing.T) *fixture {
	srv := redistest.Start(t, redistest.Options{})
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	return &fixture{srv: srv, store: registry.NewStore(rdb, registry.Options{})}
}

// config decodes a redis-registry config on the fixture's Redis. Its
// timeout_ms is 5 s, not the default 20 ms nor a tight 200 ms: it bounds the
// first snapshot load and every rate-limit call, and on a loaded CI machine
// (2 cores, -race, packages in parallel) a Redis round trip can take
// hundreds of ms; these tests are about what the plugin answers, not about
// the timeout (tests that are pass their own).
func (fx *fixture) config(t *testing.T, extra string) *Config {
	t.Helper()
	js := fmt.Sprintf(`{"registry":"redis","redis":{"host":"127.0.0.1","port":%d,"timeout_ms":5000}%s}`, fx.srv.Port, extra)
	return decode(t, js)
}

func (fx *fixture) put(t *testing.T, svc, id, addr string, w int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := fx.store.PutInstance(ctx, svc, registry.Instance{ID: id, Address: addr, Weight: w}); err != nil {
		t.Fatal(err)
	}
}

// panicKong panics where the handlers call Kong after their own checks.
type panicKong struct{ *fakeKong }
