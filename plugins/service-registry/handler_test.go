package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"runtime"
	"strconv"

	"github.com/Kong/go-pdk/test"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

func TestAccessSetsTarget(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "orders", "a", "10.1.0.1:8080", 1)
	c := fx.config(t, `,"service":"orders"`)
	k := &fakeKong{}
	c.access(k)
	if k.host != "10.1.0.1" || k.port != 8080 || k.status != 0 {
		t.Fatalf("target %s:%d status %d %s", k.host, k.port, k.status, k.body)
	}
	// Steady state: exactly one PDK call per request (set_target).
	for i := 0; i < 100; i++ {
		k := &fakeKong{}
		c.access(k)
		if len(k.calls) != 1 || k.calls[0] != "kong.service.set_target" {
			t.Fatalf("request %d: PDK calls %v", i, k.calls)
		}
	}
	// A new config version (new instance) shares the process-wide cache:
	// no Redis round trip on its first request either. (First let the
	// feed's post-subscription check finish.)
	cache := c.compile().backend.cache
	deadline := time.Now().Add(5 * time.Second)
	for st := cache.Stats(); st.Subscribes == 0 || st.Refreshing != 0; st = cache.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("feed never settled: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	fx.srv.ResetStats()
	c2 := fx.config(t, `,"service":"orders","__seq__":2`)
	c2.access(&fakeKong{})
	if n := fx.srv.TotalCalls("config|resetstat", "hello"); n != 0 {
		t.Errorf("new instance made %d Redis calls: %v", n, fx.srv.CommandCalls())
	}
}

func TestAccessWeightedAndSkipsZero(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "w", "a", "10.0.0.1:80", 1)
	fx.put(t, "w", "b", "10.0.0.2:80", 3)
	fx.put(t, "w", "z", "10.0.0.9:80", 0)
	c := fx.config(t, `,"service":"w"`)
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		k := &fakeKong{}
		c.access(k)
		counts[k.host]++
	}
	if counts["10.0.0.1"] != 100 || counts["10.0.0.2"] != 300 || counts["10.0.0.9"] != 0 {
		t.Fatalf("distribution %v", counts)
	}
}

func TestAccessNoInstance(t *testing.T) {
	fx := newFixture(t)
	for name, extra := range map[string]string{"unknown": "", "drained": "drained"} {
		svc := "svc-" + name
		if extra != "" {
			fx.put(t, svc, "a", "10.0.0.1:80", 0)
		}
		c := fx.config(t, `,"service":"`+svc+`"`)
		k := &fakeKong{}
		c.access(k)
		want := `{"message":"no healthy instance for service ` + svc + `"}`
		if k.status != 503 || k.body != want || k.host != "" {
			t.Errorf("%s: %d %s (target %q)", name, k.status, k.body, k.host)
		}
	}
}

func TestAccessMaintenance(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "m", "a", "10.0.0.1:80", 1)
	if err := fx.store.SetMaintenance(context.Background(), "m", registry.Maintenance{Enabled: true, Message: "back at 5"}); err != nil {
		t.Fatal(err)
	}
	c := fx.config(t, `,"service":"m"`)
	k := &fakeKong{}
	c.access(k)
	if k.status != 503 || k.body != `{"message":"back at 5"}` || k.host != "" {
		t.Fatalf("maintenance: %d %s", k.status, k.body)
	}
}

func TestAccessBadConfig(t *testing.T) {
	c := decode(t, `{"registry":"bogus","redis":{"port":70000}}`)
	for i := 0; i < 3; i++ {
		k := &fakeKong{}
		c.access(k)
		var body struct{ Message string }
		_ = json.Unmarshal([]byte(k.body), &body)
		if k.status != 500 || !strings.HasPrefix(body.Message, "service-registry: invalid config: ") ||
			!strings.Contains(body.Message, "registry: expected one of: kong, redis") ||
			!strings.Contains(body.Message, "redis.port: value should be between 1 and 65535") {
			t.Fatalf("bad config: %d %s", k.status, k.body)
		}
	}
}

func TestAccessRegistryKongPassThrough(t *testing.T) {
	c := decode(t, `{}`)
	k := &fakeKong{}
	c.access(k)
	if len(k.calls) != 0 {
		t.Fatalf("registry=kong made PDK calls: %v", k.calls)
	}
	c.log(k)
	if len(k.calls) != 0 {
		t.Fatalf("log phase made PDK calls: %v", k.calls)
	}
}

func TestAccessDefaultServiceName(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "kong-svc", "a", "10.0.0.5:81", 1)
	// The name cache is process-wide: a fresh service id per run.
	sid := fmt.Sprint("sid-", fx.srv.Port, "-", time.Now().UnixNano())
	c := fx.config(t, `,"service_id":{"id":"`+sid+`"}`)
	k := &fakeKong{svcID: sid, svcName: "kong-svc"}
	c.access(k)
	if k.host != "10.0.0.5" || len(k.calls) != 2 {
		t.Fatalf("first request: %v %s", k.calls, k.host)
	}
	k = &fakeKong{svcID: sid, svcName: "kong-svc"}
	c.access(k)
	if len(k.calls) != 1 {
		t.Fatalf("name not cached: %v", k.calls)
	}
	// Another instance of the same service (new config version): cached
	// process-wide by service id.
	c2 := fx.config(t, `,"service_id":"`+sid+`","__seq__":9`)
	k = &fakeKong{svcID: sid, svcName: "kong-svc"}
	c2.access(k)
	if len(k.calls) != 1 || k.host != "10.0.0.5" {
		t.Fatalf("new instance: %v", k.calls)
	}
	// A global plugin (no service_id) resolves per request.
	g := fx.config(t, "")
	for i := 0; i < 2; i++ {
		k = &fakeKong{svcID: "other", svcName: "kong-svc"}
		g.access(k)
		if len(k.calls) != 2 {
			t.Fatalf("global plugin request %d: %v", i, k.calls)
		}
	}
}

func TestAccessRecoversPanics(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "p", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"p"`)
	k := &fakeKong{}
	c.access(panicKong{k})
	if k.status != 500 || k.body != `{"message":"An unexpected error occurred"}` {
		t.Fatalf("after panic: %d %s", k.status, k.body)
	}
	c.compile().breaker = &breakerGuard{} // the log phase runs only with a breaker
	c.log(panicKong{k})                   // must return
}

func (panicKong) SetTarget(string, int) error { panic("boom") }
func (panicKong) Serialize() (string, error)  { panic("boom in log") }

func TestStaleSnapshotWhenRedisDown(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "s", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"s","cache_ttl_ms":10`)
	c.access(&fakeKong{})
	fx.srv.Kill()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		k := &fakeKong{}
		c.access(k)
		if k.host != "10.0.0.1" {
			t.Fatalf("request failed with Redis down: %d %s", k.status, k.body)
		}
		if c.compile().backend.cache.Stats().Unavailable {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("cache never noticed Redis is down")
}

// The same paths through go-pdk's own test environment (real PDK bridge).
func TestGoPDKEnvironment(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "g", "a", "10.0.0.1:80", 1)
	req := test.Request{Method: "GET", Url: "http://example.com/x"}

	env, err := test.New(t, req)
	if err != nil {
		t.Fatal(err)
	}
	env.DoHttps(fx.config(t, `,"service":"g"`))
	if env.ClientRes.Status != 200 {
		t.Errorf("target set: status %d %s", env.ClientRes.Status, env.ClientRes.Body)
	}

	env, _ = test.New(t, req)
	env.DoHttps(fx.config(t, `,"service":"none"`))
	if env.ClientRes.Status != 503 || string(env.ClientRes.Body) != `{"message":"no healthy instance for service none"}` {
		t.Errorf("no instance: %d %s", env.ClientRes.Status, env.ClientRes.Body)
	}

	env, _ = test.New(t, req)
	env.DoHttps(decode(t, `{"registry":"bogus"}`))
	if env.ClientRes.Status != 500 || !strings.Contains(string(env.ClientRes.Body), "service-registry: invalid config: registry: expected one of: kong, redis") {
		t.Errorf("bad config: %d %s", env.ClientRes.Status, env.ClientRes.Body)
	}

	env, _ = test.New(t, req)
	env.DoHttps(decode(t, `{"registry":"kong"}`))
	if env.ClientRes.Status != 200 {
		t.Errorf("pass-through: %d %s", env.ClientRes.Status, env.ClientRes.Body)
	}
}

// One log line per config version, however many requests and workers
// (each worker starts its own instance of the same version).
func TestBadConfigLoggedOncePerVersion(t *testing.T) {
	buf := captureLogs(t) // not a swap of the logger: background goroutines log too
	id := fmt.Sprint("plugin-", time.Now().UnixNano())
	for worker := 0; worker < 2; worker++ {
		c := decode(t, `{"registry":"bogus","__plugin_id":"`+id+`","__seq__":1}`)
		for i := 0; i < 3; i++ {
			c.access(&fakeKong{})
		}
	}
	if n := strings.Count(buf.String(), "refusing requests"); n != 1 {
		t.Fatalf("%d log lines for one config version:\n%s", n, buf.String())
	}
	decode(t, `{"registry":"bogus","__plugin_id":"`+id+`","__seq__":2}`).access(&fakeKong{})
	if n := strings.Count(buf.String(), "refusing requests"); n != 2 {
		t.Fatalf("new version not logged: %d", n)
	}
	if strings.Contains(buf.String(), "password") {
		t.Fatal("log mentions the password")
	}
}

// Redis with a password: the plugin authenticates and never logs it.
func TestRedisPasswordNeverLogged(t *testing.T) {
	const secret = "s3cr3t-pa55"
	srv := redistest.Start(t, redistest.Options{Password: secret})
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	store := registry.NewStore(rdb, registry.Options{})
	if _, err := store.PutInstance(context.Background(), "auth", registry.Instance{ID: "a", Address: "10.0.0.7:80", Weight: 1}); err != nil {
		t.Fatal(err)
	}
	buf := captureLogs(t) // not a swap of the logger: background goroutines log too
	c := decode(t, fmt.Sprintf(`{"registry":"redis","service":"auth","redis":{"port":%d,"password":%q,"timeout_ms":1000}}`, srv.Port, secret))
	k := &fakeKong{}
	c.access(k)
	if k.host != "10.0.0.7" {
		t.Fatalf("with password: %d %s", k.status, k.body)
	}
	if !strings.Contains(buf.String(), "new redis backend") || strings.Contains(buf.String(), secret) {
		t.Fatalf("log: %s", buf.String())
	}
}

// registry = redis over a 3-node Redis Cluster (cluster_nodes), including a
// change arriving through the feed.
func TestAccessRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	store := registry.NewStore(cl.Client(t), registry.Options{Prefix: "clu"})
	ctx := context.Background()
	if _, err := store.PutInstance(ctx, "orders", registry.Instance{ID: "a", Address: "10.2.0.1:80", Weight: 1}); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, m := range cl.Masters {
		nodes = append(nodes, fmt.Sprintf(`{"ip":"127.0.0.1","port":%d}`, m.Port))
	}
	c := decode(t, `{"registry":"redis","service":"orders","cache_ttl_ms":60000,"redis":{"key_prefix":"clu","timeout_ms":500,"cluster_nodes":[`+strings.Join(nodes, ",")+`]}}`)
	k := &fakeKong{}
	c.access(k)
	if k.host != "10.2.0.1" {
		t.Fatalf("cluster: %d %s", k.status, k.body)
	}
	// Swap the instance: visible through the feed (ttl is a minute).
	if _, err := store.PutInstance(ctx, "orders", registry.Instance{ID: "b", Address: "10.2.0.2:80", Weight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteInstance(ctx, "orders", "a"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		k := &fakeKong{}
		c.access(k)
		if k.host == "10.2.0.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("change not visible through the cluster feed: %s", k.host)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A backend whose every Config is gone (Kong closed the instances after a
// config change to other Redis settings) is closed after the idle delay;
// one still in use is kept.
func TestUnusedBackendClosed(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "x", "a", "10.0.0.1:80", 1)
	backends.mu.Lock()
	oldIdle := backends.idle
	backends.idle = 0
	backends.mu.Unlock()
	defer func() { backends.mu.Lock(); backends.idle = oldIdle; backends.mu.Unlock() }()

	keep := fx.config(t, `,"service":"x","__seq__":1`)
	rc := keep.Redis
	keep.access(&fakeKong{})
	func() {
		c := fx.config(t, `,"service":"x","__seq__":2`)
		c.access(&fakeKong{})
	}()
	if !backends.open(rc) {
		t.Fatal("no backend")
	}
	// The second Config is garbage; the first is alive: nothing closes.
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if !backends.open(rc) {
		t.Fatal("backend closed while a Config still uses it")
	}
	k := &fakeKong{}
	keep.access(k)
	if k.host != "10.0.0.1" {
		t.Fatalf("kept config: %d %s", k.status, k.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for backends.open(rc) {
		if time.Now().After(deadline) {
			t.Fatal("unused backend never closed")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisLoggerThrottled(t *testing.T) {
	buf := captureLogs(t) // not a swap of the logger: background goroutines log too
	format := "dial %s failed " + strconv.FormatInt(time.Now().UnixNano(), 10)
	for i := 0; i < 5; i++ {
		redisLogger{}.Printf(context.Background(), format, "127.0.0.1:1")
	}
	if n := strings.Count(buf.String(), "dial 127.0.0.1:1 failed"); n != 1 {
		t.Fatalf("%d lines:\n%s", n, buf.String())
	}
}

// issue 13 defect 1: set_target makes the instance the upstream Host; a
// route with preserve_host (config preserve_host, as adminsvc writes it)
// gets the client's Host back, for two PDK calls on those routes only.
func TestAccessPreserveHost(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "ph", "a", "10.0.0.1:8080", 1)
	for _, tc := range []struct {
		config, wantHost string
		wantCalls        []string
	}{
		{`,"service":"ph","preserve_host":true`, "api.example.com:8000",
			[]string{"kong.service.set_target", "kong.request.get_header", "kong.service.request.set_header"}},
		{`,"service":"ph"`, "10.0.0.1", []string{"kong.service.set_target"}},
		{`,"service":"ph","preserve_host":false`, "10.0.0.1", []string{"kong.service.set_target"}},
	} {
		c := fx.config(t, tc.config)
		k := &fakeKong{reqHeaders: map[string]string{"host": "api.example.com:8000"}}
		c.access(k)
		if k.upstreamHost != tc.wantHost || !slices.Equal(k.calls, tc.wantCalls) {
			t.Errorf("%s: upstream Host %q calls %v, want %q %v", tc.config, k.upstreamHost, k.calls, tc.wantHost, tc.wantCalls)
		}
	}
	// No Host header (HTTP/1.0): nothing to preserve, the target's stays.
	c := fx.config(t, `,"service":"ph","preserve_host":true`)
	k := &fakeKong{}
	c.access(k)
	if k.upstreamHost != "10.0.0.1" || len(k.calls) != 2 {
		t.Errorf("no Host: upstream Host %q calls %v", k.upstreamHost, k.calls)
	}
	// registry = kong: Kong's router already preserved it; no PDK call.
	c = fx.config(t, `,"registry":"kong","preserve_host":true`)
	k = &fakeKong{reqHeaders: map[string]string{"host": "api.example.com"}}
	c.access(k)
	if len(k.calls) != 0 {
		t.Errorf("registry kong: calls %v", k.calls)
	}
}
