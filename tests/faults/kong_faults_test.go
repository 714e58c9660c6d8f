package faults

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// managedNames counts managed entities of kind in the fake by name, the
// fast path's catch-all aside (it belongs to no registered route).
func managedNames(k *kongfake.Fake, kind string) map[string]int {
	out := map[string]int{}
	for _, e := range k.List(kind) {
		tags, _ := e["tags"].([]any)
		if hasTag(tags, translator.TagFastPath) {
			continue
		}
		for _, tg := range tags {
			if tg == translator.TagManaged {
				out[fmt.Sprint(e["name"])]++
				break
			}
		}
	}
	return out
}

func hasTag(tags []any, tag string) bool {
	for _, tg := range tags {
		if tg == tag {
			return true
		}
	}
	return false
}

// converged reports whether Kong holds exactly one managed service, route
// and upstream per registered route (no duplicates, nothing stale) and
// adminsvc reports no pending change.
func converged(t testing.TB, api *apiClient, k *kongfake.Fake) error {
	want := map[string]bool{}
	r := api.do("GET", "/routes", nil)
	list, _ := r.Body["routes"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		want[registry.ServiceName(m["host"].(string), m["path"].(string))] = true
	}
	for _, kind := range []string{"services", "routes"} {
		got := managedNames(k, kind)
		if len(got) != len(want) {
			return fmt.Errorf("%s: kong has %d managed, registry %d", kind, len(got), len(want))
		}
		for n, c := range got {
			if !want[n] || c != 1 {
				return fmt.Errorf("%s %s: %d in kong, registered %v", kind, n, c, want[n])
			}
		}
	}
	if n := len(managedNames(k, "upstreams")); n != len(want) {
		return fmt.Errorf("upstreams: %d for %d routes", n, len(want))
	}
	h := api.do("GET", "/health", nil)
	if p, ok := h.Body["pending_changes"].(float64); !ok || p != 0 {
		return fmt.Errorf("pending_changes = %v", h.Body["pending_changes"])
	}
	return nil
}

// Kong's Admin API failing with 5xx, then down, then slow (past the
// client timeout, and answering late after applying): registrations are
// still accepted, and once Kong is back the two converge with no duplicate
// entity and pending back to 0, without restarting adminsvc.
func TestKongAdminFaultsConverge(t *testing.T) {
	for _, mode := range []string{"db", "dbless"} {
		t.Run(mode, func(t *testing.T) { kongFaults(t, mode) })
	}
}

func kongFaults(t *testing.T, mode string) {
	rs := redistest.Start(t, redistest.Options{})
	k := kongfake.New(kongfake.Options{DBLess: mode == "dbless", Plugins: map[string]kongfake.PluginSchema{"service-registry": kongfake.RegistrySchema(t)}})
	hf := NewHTTPFaults(t, k)
	a := StartAdminsvc(t, AdminOptions{RedisURL: rs.URL(), KongURL: hf.URL(), Env: map[string]string{
		"SR_KONG_TIMEOUT": "1s", "SR_RECONCILE_INTERVAL": "1s", "SR_KONG_MODE": mode,
	}})
	api := newAPI(a.URL)
	reg := func(n int, prefix string) {
		t.Helper()
		for i := 0; i < n; i++ {
			if r := api.register(prefix+".kong.test", fmt.Sprintf("/p%d", i), fmt.Sprintf("http://10.1.0.%d:80", i+1)); r.Status != 200 {
				t.Fatalf("register with Kong faulty: %d %v %s", r.Status, r.Err, r.Raw)
			}
		}
	}
	reg(3, "healthy")
	waitUntil(t, 15*time.Second, "first convergence", func() bool { return converged(t, api, k) == nil })

	hf.FailWith(500)
	reg(5, "fivexx")
	waitUntil(t, 10*time.Second, "pending changes while Kong answers 500", func() bool {
		p, _ := api.do("GET", "/health", nil).Body["pending_changes"].(float64)
		return p > 0
	})
	hf.FailWith(0)
	hf.Down(true)
	reg(5, "down")
	if r := api.do("POST", "/deregister", map[string]any{"host": "healthy.kong.test", "path": "/p0"}); r.Status != 200 {
		t.Fatalf("deregister with Kong down: %d %s", r.Status, r.Raw)
	}
	time.Sleep(1500 * time.Millisecond) // one reconcile period against a dead Kong
	hf.Down(false)
	hf.SetReplyDelay(1500 * time.Millisecond) // applied, then answered after the 1 s client timeout
	reg(5, "slow")
	time.Sleep(2500 * time.Millisecond) // writes land while their answers are lost
	hf.Heal()
	t0 := time.Now()
	var last error
	waitUntil(t, 30*time.Second, "convergence after Kong healed", func() bool {
		last = converged(t, api, k)
		return last == nil
	})
	n, faulted := hf.Counts()
	t.Logf("RESULT fault=kong-admin-5xx-down-slow mode=%s kong_requests=%d faulted=%d routes=%d converge_after_heal=%v",
		mode, n, faulted, len(api.routes(t)), time.Since(t0))
	if len(api.routes(t)) != 17 {
		t.Fatalf("routes = %d, want 17", len(api.routes(t)))
	}
}

// adminsvc SIGKILLed while it registers and syncs Kong (writes in flight,
// slow Kong): after a restart nothing acknowledged is missing and Kong
// converges with no duplicate entity.
func TestAdminsvcKilledMidSync(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	k := kongfake.New(kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": kongfake.RegistrySchema(t)}})
	hf := NewHTTPFaults(t, k)
	hf.SetLatency(30 * time.Millisecond) // keep Kong writes in flight when the kill lands
	// A fixed replica id, as in a StatefulSet: the restarted process takes
	// its own Kong sync lease back at once. With the default (hostname-pid)
	// it waits for the dead holder's lease to expire (15 s; measured 15.9 s).
	a := StartAdminsvc(t, AdminOptions{RedisURL: rs.URL(), KongURL: hf.URL(), Env: map[string]string{"SR_KONG_TIMEOUT": "2s", "SR_REPLICA_ID": "replica-a"}})
	api := newAPI(a.URL)
	stop := make(chan struct{})
	var never atomic.Int64
	done := make(chan *loadResult)
	go func() { done <- registerLoad(api, 3, stop, &never, 60) }()
	waitUntil(t, 15*time.Second, "Kong writes under way", func() bool { n, _ := hf.Counts(); return n >= 30 })
	a.Kill()
	close(stop)
	res := <-done
	a.Restart()
	hf.Heal()
	have := api.routes(t)
	lost := 0
	for _, key := range res.ackedKeys {
		if !have[key] {
			lost++
		}
	}
	t0 := time.Now()
	var last error
	if !waitFor(30*time.Second, func() bool { last = converged(t, api, k); return last == nil }) {
		t.Fatalf("Kong did not converge after the restart: %v", last)
	}
	t.Logf("RESULT fault=adminsvc-sigkill-mid-sync sent=%d acked=%d lost=%d routes=%d converge_after_restart=%v",
		res.sent, res.acked, lost, len(have), time.Since(t0))
	if lost > 0 {
		t.Fatalf("%d acknowledged registrations lost across an adminsvc SIGKILL", lost)
	}
}

// Redis restarted empty under a running adminsvc (no persistence): the
// registry's counters start again from zero. adminsvc must notice and
// converge Kong to the rebuilt registry, not trust a generation it
// remembers from before the reset.
func TestKongConvergesAfterRegistryReset(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{}) // no AOF
	k := kongfake.New(kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": kongfake.RegistrySchema(t)}})
	hf := NewHTTPFaults(t, k)
	a := StartAdminsvc(t, AdminOptions{RedisURL: rs.URL(), KongURL: hf.URL(), Env: map[string]string{"SR_REPLICA_ID": "replica-a"}})
	api := newAPI(a.URL)
	for i := 0; i < 8; i++ {
		if r := api.register("reset.test", fmt.Sprintf("/old%d", i), "http://10.3.0.1:80"); r.Status != 200 {
			t.Fatalf("register: %d %s", r.Status, r.Raw)
		}
	}
	waitUntil(t, 15*time.Second, "first convergence", func() bool { return converged(t, api, k) == nil })

	rs.Restart() // comes back empty
	waitHealthy(t, api, 15*time.Second)
	if r := api.register("reset.test", "/new", "http://10.3.0.2:80"); r.Status != 200 {
		t.Fatalf("register after the reset: %d %s", r.Status, r.Raw)
	}
	t0 := time.Now()
	var last error
	ok := waitFor(20*time.Second, func() bool { last = converged(t, api, k); return last == nil })
	t.Logf("RESULT fault=redis-restarted-empty-kong converged=%v after=%v last=%v", ok, time.Since(t0), last)
	if !ok {
		t.Fatalf("Kong did not converge to the rebuilt registry within 20 s: %v", last)
	}
}
