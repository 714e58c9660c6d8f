package kongsync_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// settleEnv is a fast-path env against a fake that reports Kong's timings
// (db_update_frequency = worker_state_update_frequency = freq seconds, so
// the catch-all's settle time is 3 × freq) and a syncer on clock.
func settleEnv(t *testing.T, dbless bool, freq float64, clock func() time.Time) *fastEnv {
	t.Helper()
	return newFastEnvWith(t, fastEnvOptions{dbless: dbless, freq: freq, clock: clock})
}

func (e *fastEnv) applyChanges() kongsync.Result {
	e.t.Helper()
	res, err := e.rec.ApplyChangesOnce(context.Background())
	if err != nil {
		e.t.Fatalf("apply changes: %v", err)
	}
	return res
}

func (e *fastEnv) deleteInKong(kind, name string) {
	e.t.Helper()
	if code, b := e.kongCall(http.MethodDelete, "/"+kind+"/"+name, nil); code != http.StatusNoContent {
		e.t.Fatalf("DELETE /%s/%s: %d %v", kind, name, code, b)
	}
}

// In DB mode Kong's workers rebuild the router and the plugins iterator in
// separate timers: a catch-all route written with its plugin can be routed
// before its plugin runs, and Kong then answers unknown requests 503 (the
// catch-all's upstream has no targets) instead of its own 404, as seen in a
// real Kong 3.4.2 (tests/realkong TestFastPathDBMode). So the route waits
// until the plugin has been in Kong for db_update_frequency +
// db_update_propagation + 2 × worker_state_update_frequency, and the
// result asks for the apply that creates it.
func TestCatchAllRouteWaitsForItsPlugin(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	e := settleEnv(t, false, 1, clock)

	res := e.reconcile()
	_, rt, _, plug := e.catchAll()
	if plug == nil || rt != nil {
		t.Fatalf("first sync: plugin %v route %v, want the plugin alone", plug != nil, rt != nil)
	}
	if res.RetryIn != 3*time.Second {
		t.Fatalf("first sync asks to retry in %v, want 3s", res.RetryIn)
	}
	if st := e.sync.Status().FastPath; st != kongsync.FastPathPending {
		t.Fatalf("fast path %q while the route waits, want pending", st)
	}

	now = now.Add(2 * time.Second)
	if res := e.applyChanges(); res.RetryIn != time.Second {
		t.Fatalf("2 s later: retry in %v, want 1s", res.RetryIn)
	}
	if _, rt, _, _ := e.catchAll(); rt != nil {
		t.Fatal("route created 2 s after its plugin, before the settle time (3 s)")
	}

	now = now.Add(time.Second)
	if res := e.applyChanges(); res.RetryIn != 0 || res.Created != 1 {
		t.Fatalf("3 s later: %+v, want the route created and no retry", res)
	}
	e.checkCatchAll()
	if st := e.sync.Status().FastPath; st != kongsync.FastPathOn {
		t.Fatalf("fast path %q with its route in kong, want on", st)
	}

	// Drift: the route deleted in Kong, its plugin long there: healed at once.
	e.deleteInKong("routes", translator.FastPathName)
	now = now.Add(time.Minute)
	if res := e.reconcile(); res.RetryIn != 0 {
		t.Fatalf("route deleted in kong: retry in %v, want the route back at once", res.RetryIn)
	}
	e.checkCatchAll()

	// Another replica (or a restart) finding the plugin without its route
	// cannot tell how long the plugin has been there: it waits the whole
	// settle time from then.
	e.deleteInKong("routes", translator.FastPathName)
	e.sync = e.newSyncer(clock)
	e.setFastPath(true)
	if res := e.reconcile(); res.RetryIn != 3*time.Second {
		t.Fatalf("new syncer, plugin without route: retry in %v, want 3s", res.RetryIn)
	}
	if _, rt, _, _ := e.catchAll(); rt != nil {
		t.Fatal("new syncer created the route at once")
	}
	// A route already in Kong is kept while a new syncer settles.
	now = now.Add(3 * time.Second)
	e.applyChanges()
	e.checkCatchAll()
	e.sync = e.newSyncer(clock)
	e.setFastPath(true)
	if res := e.reconcile(); res.RetryIn != 0 || res.Deleted != 0 {
		t.Fatalf("new syncer, catch-all complete in kong: %+v", res)
	}
	e.checkCatchAll()
}

// DB-less Kong swaps its router and plugins iterator together: the
// catch-all is pushed whole at once.
func TestCatchAllDBLessAtOnce(t *testing.T) {
	e := settleEnv(t, true, 5, time.Now)
	if res := e.reconcile(); res.RetryIn != 0 {
		t.Fatalf("dbless: retry in %v", res.RetryIn)
	}
	e.checkCatchAll()
}

// The reconciler's loop makes the apply the held route asks for, with no
// registry change and no full reconcile due (Interval is an hour), and
// not before the settle time.
func TestReconcilerCreatesHeldRoute(t *testing.T) {
	const settle = time.Second
	e := settleEnv(t, false, settle.Seconds()/3, time.Now)
	var mu sync.Mutex
	var pluginAt, routeAt time.Time
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: e.store, Syncer: e.sync, Redis: e.redis.Client(),
		Interval: time.Hour, Debounce: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, LeaseTTL: 3 * time.Second,
		Translate: e.opts, OnApply: func(res kongsync.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			_, rt, _, plug := e.catchAll()
			if plug != nil && pluginAt.IsZero() {
				pluginAt = time.Now()
			}
			if rt != nil && routeAt.IsZero() {
				routeAt = time.Now()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rec.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return !routeAt.IsZero() }, "the catch-all route created by the loop")
	e.checkCatchAll()
	mu.Lock()
	defer mu.Unlock()
	// Without the hold the route comes with the plugin (gap ~0). The clock
	// starts inside the apply that wrote the plugin, a moment before
	// OnApply records it, so half the settle time is a bound load cannot
	// break.
	if gap := routeAt.Sub(pluginAt); gap < settle/2 {
		t.Fatalf("route %v after its plugin, want at least the settle time %v", gap, settle)
	}
}

// A replica that lost the lease and gets it back (ForgetApplied) starts
// the settle clock again: the leader meanwhile may have deleted and
// rewritten the plugin.
func TestForgetAppliedRestartsSettle(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	e := settleEnv(t, false, 1, func() time.Time { return now })
	e.reconcile()
	now = now.Add(3 * time.Second)
	e.applyChanges()
	e.checkCatchAll()
	e.deleteInKong("routes", translator.FastPathName)
	e.sync.ForgetApplied()
	if res := e.reconcile(); res.RetryIn != 3*time.Second {
		t.Fatalf("after ForgetApplied: retry in %v, want the whole settle time (3s)", res.RetryIn)
	}
	if _, rt, _, _ := e.catchAll(); rt != nil {
		t.Fatal("route recreated at once after ForgetApplied")
	}
}

// With the mode configured, a Kong that refuses GET / (an RBAC token
// without access to it) is asked once, and Kong's default timings apply.
func TestExplicitModeWithoutGetRoot(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	fake := kongfake.Start(t, kongfake.Options{UpdateFrequency: 1,
		Plugins: map[string]kongfake.PluginSchema{"service-registry": kongfake.RegistrySchema(t)}})
	var roots atomic.Int64
	target, _ := url.Parse(fake.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			roots.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"Forbidden"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: front.URL, Mode: kongsync.ModeDB, Attempts: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := &fastEnv{env: &env{t: t, redis: rs, store: store, kong: fake, sync: s},
		opts: translator.Options{FastPath: true, Redis: map[string]any{"host": "127.0.0.1", "port": rs.Port}}}
	e.setFastPath(true)
	if res := e.reconcile(); res.RetryIn != 15*time.Second {
		t.Fatalf("retry in %v, want kong's default settle (15s)", res.RetryIn)
	}
	e.applyChanges()
	e.reconcile()
	if n := roots.Load(); n != 1 {
		t.Fatalf("GET / asked %d times, want once (kong refused it)", n)
	}
}

// A plugin Kong refuses (an older binary without fast_path) keeps the
// route out for good: no early apply is asked for, the next full
// reconcile tries again, and Status says refused.
func TestRefusedPluginAsksNoRetry(t *testing.T) {
	e := newFastEnvWith(t, fastEnvOptions{freq: 1, schema: refuseFastPath(t)})
	res := e.reconcile()
	if len(res.Refused) == 0 || res.RetryIn != 0 {
		t.Fatalf("refused %+v, retry in %v: want the refusal and no retry", res.Refused, res.RetryIn)
	}
	if _, rt, _, _ := e.catchAll(); rt != nil {
		t.Fatal("catch-all route created without its plugin")
	}
	if st := e.sync.Status().FastPath; st != kongsync.FastPathRefused {
		t.Fatalf("fast path %q, want refused", st)
	}
}
