package e2e

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// Weighted discovery over 3 instances: traffic splits by weight.
func TestWeightedDiscovery(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 2, "c": 3}})
	byInst, byStatus := e.load(600, 4, "/orders/list")
	if byStatus[200] != 600 {
		t.Fatalf("statuses = %v\n%s", byStatus, e.kong.Logs())
	}
	for id, w := range map[string]int{"a": 1, "b": 2, "c": 3} {
		want := 600 * w / 6
		if math.Abs(float64(byInst[id]-want)) > 0.1*float64(want) {
			t.Errorf("instance %s got %d requests, want %d±10%% (all: %v)", id, byInst[id], want, byInst)
		}
	}
}

// An instance removed from the registry gets no traffic 100 ms later.
func TestInstanceRemovedStopsTraffic(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1, "c": 1}})
	if _, st := e.load(30, 2, "/orders"); st[200] != 30 {
		t.Fatalf("warm-up statuses = %v", st)
	}
	removed := e.bes["b"]
	if err := e.store.DeleteInstance(e.ctx(), "orders", "b"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	// Keep sending: note when the last request that reached "b" was sent,
	// until 100 ms have passed and 50 more requests went elsewhere. The
	// send time bounds when the plugin picked: a request picked before the
	// mark may be answered after it on a loaded machine.
	var lastHit time.Time
	clean := 0
	for clean < 50 {
		before := removed.hits.Load()
		sent := time.Now()
		status, _, _ := e.get("/orders")
		if status != 200 {
			t.Fatalf("status %d after removal", status)
		}
		if removed.hits.Load() != before {
			lastHit, clean = sent, 0
			continue
		}
		if time.Since(t0) > 100*time.Millisecond {
			clean++
		}
		if time.Since(t0) > 10*time.Second {
			t.Fatal("removed instance still receives traffic after 10 s")
		}
	}
	if !lastHit.IsZero() && lastHit.Sub(t0) > 100*time.Millisecond {
		t.Fatalf("a request sent %v after removal reached the removed instance (limit 100ms)", lastHit.Sub(t0))
	}
}

// Redis killed: the plugin keeps routing from its cache (fail static); once
// Redis is back, registry changes reach the plugin again.
func TestRedisKilledRoutingContinues(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}, redis: redistest.Options{AppendFsync: "always"}})
	if _, st := e.load(20, 2, "/orders"); st[200] != 20 {
		t.Fatalf("warm-up statuses = %v", st)
	}
	e.redis.Kill()
	byInst, st := e.load(100, 2, "/orders")
	if st[200] != 100 || byInst["a"] == 0 || byInst["b"] == 0 {
		t.Fatalf("with Redis dead: statuses=%v instances=%v\n%s", st, byInst, e.kong.Logs())
	}
	e.redis.Restart()
	e.bes["c"] = newBackend(t, "c")
	e.put("c", 1)
	waitFor(t, 10*time.Second, "the instance added after Redis came back to get traffic", func() bool {
		_, _, h := e.get("/orders")
		return h.Get("X-Instance") == "c"
	})
}

// registry = kong: the plugin leaves routing to Kong's upstream and costs no
// PDK call.
func TestRegistryKongPassThrough(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"registry": "kong"}})
	a, b := newBackend(t, "ka"), newBackend(t, "kb")
	e.kong.AddUpstream(harness.Upstream{Name: "orders-up", Targets: []harness.Target{{Target: a.addr()}, {Target: b.addr()}}})
	e.kong.AddService(harness.Service{Name: "kongsvc", Host: "orders-up"})
	if _, err := e.kong.AddRoute(harness.Route{Name: "kongrt", Service: "kongsvc", Paths: []string{"/k"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kong.AddPlugin(harness.PluginConfig{Service: "kongsvc", Config: map[string]any{"registry": "kong"}}); err != nil {
		t.Fatal(err)
	}
	byInst, st := e.load(20, 1, "/k/x")
	if st[200] != 20 || byInst["ka"] != 10 || byInst["kb"] != 10 {
		t.Fatalf("statuses=%v instances=%v", st, byInst)
	}
	rs, err := e.kong.WaitRequests(e.ctx(), 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.TotalCalls() != 0 || r.Events["access"] != 1 {
			t.Fatalf("registry=kong request cost %v", r)
		}
	}
}

// Kong's schema refuses bad config with its own messages (real -dump).
func TestBadConfigRefusedByKong(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	_, err := e.kong.AddPlugin(harness.PluginConfig{Config: map[string]any{
		"registry": "bogus", "redis": map[string]any{"port": 70000}, "bogus": 1,
	}})
	se, ok := err.(*harness.SchemaError)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	got, _ := json.Marshal(se.Fields)
	want := `{"bogus":"unknown field","redis":{"port":"value should be between 1 and 65535"},"registry":"expected one of: kong, redis"}`
	if string(got) != want {
		t.Fatalf("fields = %s\nwant     %s", got, want)
	}
	// The seed's call: config.registry=kong.
	if _, err := e.kong.AddPlugin(harness.PluginConfig{Config: map[string]any{"registry": "kong"}}); err != nil {
		t.Fatalf("seed config refused: %v", err)
	}
}

// A config the plugin cannot use answers 500 with a message; the plugin
// server does not crash.
func TestBadConfig500NotCrash(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	pid := e.kong.Process().PID()
	// What Kong's schema would refuse, sent anyway: wrong JSON types.
	bad, err := e.kong.AddPlugin(harness.PluginConfig{Unchecked: true, Config: map[string]any{
		"registry": 5, "redis": "not a record", "cache_ttl_ms": "x",
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.kong.DeletePlugin(e.pid)
	status, body, _ := e.get("/orders")
	if status != 500 {
		t.Fatalf("bad config: %d %s", status, body)
	}
	var msg struct{ Message string }
	if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.Message == "" {
		t.Fatalf("body %q is not Kong's {\"message\"} shape", body)
	}
	if e.kong.Process().PID() != pid || e.kong.Process().Spawns() != 1 {
		t.Fatal("the plugin server restarted: it crashed on a bad config")
	}
	if err := e.kong.UpdatePlugin(bad, discoveryConfig(e.redis)); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := e.get("/orders"); status != 200 {
		t.Fatalf("after fixing the config: %d %s", status, body)
	}
}

// Plugin server killed: the supervisor respawns it and requests recover.
func TestPluginKilledRecovers(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}, kong: harness.Options{RespawnDelay: 100 * time.Millisecond}})
	if status, _, _ := e.get("/orders"); status != 200 {
		t.Fatal(status)
	}
	p, _ := os.FindProcess(e.kong.Process().PID())
	old := e.kong.Process().PID()
	_ = p.Signal(syscall.SIGKILL)
	waitFor(t, 10*time.Second, "a new plugin server answering", func() bool {
		if e.kong.Process().PID() == old {
			return false
		}
		status, _, _ := e.get("/orders")
		return status == 200
	})
}

// DESIGN decision 7: discovery costs one PDK call (set_target) in access and
// none in log; two events per request.
func TestPDKBudgetDiscovery(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}})
	e.load(5, 1, "/orders") // first load, instance start
	if _, err := e.kong.WaitRequests(e.ctx(), 5); err != nil {
		t.Fatal(err)
	}
	e.kong.ResetRequests()
	if _, st := e.load(50, 2, "/orders"); st[200] != 50 {
		t.Fatalf("statuses %v", st)
	}
	rs, err := e.kong.WaitRequests(e.ctx(), 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.CallsByPhase["access"] != 1 || r.Calls["kong.service.set_target"] != 1 || r.CallsByPhase["log"] != 0 || r.TotalEvents() != 2 {
			t.Fatalf("request cost %v, want access=1 call (set_target), log=0, 2 events", r)
		}
	}
}

// Maintenance answers 503 with its message (a plugin exit: Kong's headers),
// and a service whose only instance is drained (weight 0) has no target.
func TestMaintenanceAndDrained(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	if status, _, _ := e.get("/orders"); status != 200 {
		t.Fatal(status)
	}
	if err := e.store.SetMaintenance(e.ctx(), "orders", registry.Maintenance{Enabled: true, Message: "down for upgrade"}); err != nil {
		t.Fatal(err)
	}
	var body string
	var h http.Header
	waitFor(t, 5*time.Second, "maintenance 503", func() bool {
		var status int
		status, body, h = e.get("/orders")
		return status == 503
	})
	if body != `{"message":"down for upgrade"}` || h.Get("Server") != "kong/3.9.3" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("maintenance response %q %v", body, h)
	}
	if err := e.store.SetMaintenance(e.ctx(), "orders", registry.Maintenance{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "maintenance off", func() bool { s, _, _ := e.get("/orders"); return s == 200 })
	if _, err := e.store.PatchInstance(e.ctx(), "orders", "a", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "drained instance out of rotation", func() bool {
		var status int
		status, body, _ = e.get("/orders")
		return status == 503
	})
	if body != `{"message":"no healthy instance for service orders"}` {
		t.Fatalf("drained: %q", body)
	}
}

// Plugin server down (killed, not yet respawned): Kong 3.4 skips the phase
// and routes with its own upstream (fail static, DESIGN decision 3); Kong 3.9
// answers 500.
func TestPluginDownKong34VersusKong39(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		name := "kong39_fail_closed"
		if failOpen {
			name = "kong34_fail_open"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{instances: map[string]int{"a": 1},
				kong: harness.Options{FailOpen: failOpen, RespawnDelay: time.Hour}})
			// What adminsvc writes: a Kong upstream with the same instance.
			e.kong.AddUpstream(harness.Upstream{Name: "orders-up", Targets: []harness.Target{{Target: e.bes["a"].addr()}}})
			e.kong.AddService(harness.Service{Name: "static", Host: "orders-up"})
			if _, err := e.kong.AddRoute(harness.Route{Name: "static", Service: "static", Paths: []string{"/static"}}); err != nil {
				t.Fatal(err)
			}
			cfg := discoveryConfig(e.redis)
			if _, err := e.kong.AddPlugin(harness.PluginConfig{Service: "static", Config: cfg}); err != nil {
				t.Fatal(err)
			}
			if status, _, _ := e.get("/static"); status != 200 {
				t.Fatal(status)
			}
			if err := e.kong.Process().Kill(); err != nil {
				t.Fatal(err)
			}
			want := 500
			if failOpen {
				want = 200
			}
			// Pooled connections die first ("closed": Kong retries), then
			// the socket refuses: the answer settles on want.
			waitFor(t, 5*time.Second, "the plugin-down answer", func() bool {
				status, _, _ := e.get("/static")
				return status == want
			})
			for i := 0; i < 5; i++ {
				if status, body, _ := e.get("/static"); status != want {
					t.Fatalf("plugin down: %d %s, want %d", status, body, want)
				}
			}
		})
	}
}

// Config changes under traffic: Kong starts a new instance per config
// version and closes the old one; no request may fail meanwhile.
func TestConfigChangeUnderLoad(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1, "b": 1}})
	done := make(chan struct{})
	var st map[int]int
	go func() {
		defer close(done)
		_, st = e.load(300, 4, "/orders")
	}()
	for i := 0; i < 5; i++ {
		cfg := discoveryConfig(e.redis)
		cfg["cache_ttl_ms"] = 1000 + i
		if err := e.kong.UpdatePlugin(e.pid, cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // spread the changes over the load, not a wait for state
	}
	<-done
	if st[200] != 300 {
		t.Fatalf("statuses during config changes: %v\n%s", st, e.kong.Logs())
	}
	if e.kong.InstancesClosed() == 0 {
		t.Fatal("no old instance was closed")
	}
}
