package kongsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

type env struct {
	t     *testing.T
	redis *redistest.Server
	store *registry.Store
	kong  *kongfake.Fake
	sync  *kongsync.Syncer
	rec   *kongsync.Reconciler
}

func newEnv(t *testing.T, dbless bool, base string) *env {
	t.Helper()
	return newEnvVersion(t, dbless, base, "")
}

// newEnvVersion is newEnv against a fake answering as Kong version
// (kongfake's default when "").
func newEnvVersion(t *testing.T, dbless bool, base, version string) *env {
	t.Helper()
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	fake := kongfake.Start(t, kongfake.Options{DBLess: dbless, Version: version, Plugins: map[string]kongfake.PluginSchema{
		"service-registry": kongfake.RegistrySchema(t),
	}})
	return newEnvVia(t, rs, store, fake, fake.URL(), base)
}

// newEnvVia is an env whose syncer reaches the fake through adminURL (the
// fake's own URL, or a proxy in front of it).
func newEnvVia(t *testing.T, rs *redistest.Server, store *registry.Store, fake *kongfake.Fake, adminURL, base string) *env {
	t.Helper()
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: adminURL, BaseConfig: []byte(base), Attempts: 2, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client(),
		Interval: time.Hour, Debounce: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, LeaseTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, redis: rs, store: store, kong: fake, sync: s, rec: rec}
}

func (e *env) register(host, path, backend, opts string) {
	e.t.Helper()
	r := registry.Route{Host: host, Path: path, Backend: backend}
	if opts != "" {
		r.Options = json.RawMessage(opts)
	}
	if _, _, err := e.store.RegisterRoute(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) reconcile() kongsync.Result {
	e.t.Helper()
	res, err := e.rec.ReconcileOnce(context.Background())
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	return res
}

func (e *env) kongCall(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, e.kong.URL()+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func writes(counts map[string]int) int {
	n := 0
	for k, v := range counts {
		if !strings.HasPrefix(k, "GET ") {
			n += v
		}
	}
	return n
}

func TestDBModeRegisterDriftDeregister(t *testing.T) {
	e := newEnv(t, false, "")
	e.register("api.example.com", "/v2", "http://api-v2:9000", `{"timeout":"60s","headers":{"X-API-Version":"2.0"},"rate_limit":{"enabled":true,"requests_per_min":100}}`)
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")
	e.register("*.example.com", "/", "https://catchall", "")

	res := e.reconcile()
	if res.Created == 0 || res.Mode != kongsync.ModeDB {
		t.Fatalf("first reconcile: %+v", res)
	}
	svc, ok := e.kong.Find("services", "sr-api.example.com_v2")
	if !ok {
		t.Fatalf("service missing; have %v", e.kong.List("services"))
	}
	if svc["read_timeout"] != 60000.0 || svc["host"] != "sr-api.example.com_v2.upstream" {
		t.Fatalf("service fields: %v", svc)
	}
	rt, ok := e.kong.Find("routes", "sr-api.example.com_v2")
	if !ok || rt["paths"].([]any)[0] != "/v2" || rt["hosts"].([]any)[0] != "api.example.com" {
		t.Fatalf("route: %v", rt)
	}
	if got := len(e.kong.List("plugins")); got != 4 { // 3 service-registry + 1 response-transformer
		t.Fatalf("plugins: %d", got)
	}
	if got := len(e.kong.List("targets")); got != 3 {
		t.Fatalf("targets: %d", got)
	}

	// No drift: only reads.
	e.kong.ResetCounts()
	res = e.reconcile()
	if res.Changes() != 0 || writes(e.kong.Counts()) != 0 {
		t.Fatalf("no-drift reconcile wrote: %+v %v", res, e.kong.Counts())
	}

	// Drift: delete a managed route, edit a managed service, add an
	// unmanaged service; one reconcile heals ours and leaves theirs.
	if st, body := e.kongCall("DELETE", "/routes/sr-api.example.com_v1", nil); st != 204 {
		t.Fatalf("delete route: %d %v", st, body)
	}
	if st, body := e.kongCall("PATCH", "/services/sr-api.example.com_v2", map[string]any{"read_timeout": 5}); st != 200 {
		t.Fatalf("patch service: %d %v", st, body)
	}
	if st, body := e.kongCall("POST", "/services", map[string]any{"name": "theirs", "host": "example.org"}); st != 201 {
		t.Fatalf("post unmanaged: %d %v", st, body)
	}
	if st, body := e.kongCall("POST", "/upstreams/sr-api.example.com_v2.upstream/targets", map[string]any{"target": "10.9.9.9:80", "tags": []string{translator.TagManaged}}); st != 201 {
		t.Fatalf("post stray target: %d %v", st, body)
	}
	e.reconcile()
	if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
		t.Fatal("deleted route not recreated")
	}
	if svc, _ := e.kong.Find("services", "sr-api.example.com_v2"); svc["read_timeout"] != 60000.0 {
		t.Fatalf("edited service not reverted: %v", svc["read_timeout"])
	}
	if _, ok := e.kong.Find("services", "theirs"); !ok {
		t.Fatal("unmanaged service touched")
	}
	for _, tg := range e.kong.List("targets") {
		if tg["target"] == "10.9.9.9:80" {
			t.Fatal("stray managed target not removed")
		}
	}

	// Deregister: everything of that route goes, nothing else.
	if _, err := e.store.DeregisterRoute(context.Background(), "api.example.com", "/v2"); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	for _, kind := range []string{"services", "routes", "upstreams"} {
		for _, ent := range e.kong.List(kind) {
			if strings.Contains(ent["name"].(string), "_v2") {
				t.Fatalf("%s left after deregister: %v", kind, ent["name"])
			}
		}
	}
	if got := len(e.kong.List("services")); got != 3 { // v1, wildcard, theirs
		t.Fatalf("services after deregister: %d", got)
	}
	if got := len(e.kong.List("plugins")); got != 2 {
		t.Fatalf("plugins after deregister: %d", got)
	}
}

func TestDBModeInstancesBecomeTargets(t *testing.T) {
	e := newEnv(t, false, "")
	e.register("api.example.com", "/v2", "http://api-v2:9000", "")
	name := registry.ServiceName("api.example.com", "/v2")
	ctx := context.Background()
	if _, err := e.store.PutInstance(ctx, name, registry.Instance{ID: "green", Address: "10.0.0.7:9000", Weight: 10}); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	if got := len(e.kong.List("targets")); got != 2 {
		t.Fatalf("targets: %v", e.kong.List("targets"))
	}
	if _, err := e.store.PatchInstance(ctx, name, "green", 50); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	for _, tg := range e.kong.List("targets") {
		if tg["target"] == "10.0.0.7:9000" && tg["weight"] != 50.0 {
			t.Fatalf("weight not applied: %v", tg)
		}
	}
	if err := e.store.DeleteInstance(ctx, name, "green"); err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	if got := len(e.kong.List("targets")); got != 1 {
		t.Fatalf("targets after delete: %v", e.kong.List("targets"))
	}
}

func TestDBLessPushesOnlyOnChangeAndKeepsBase(t *testing.T) {
	base := `_format_version: "3.0"
services:
- name: operator-svc
  url: http://operator.internal:8080
  routes:
  - name: operator-route
    paths: [/op]
`
	e := newEnv(t, true, base)
	e.register("api.example.com", "/v2", "http://api-v2:9000", `{"headers":{"X-A":"1"}}`)
	res := e.reconcile()
	if !res.Pushed || e.kong.ConfigPushes() != 1 {
		t.Fatalf("first reconcile did not push: %+v", res)
	}
	if _, ok := e.kong.Find("services", "operator-svc"); !ok {
		t.Fatal("operator's base service missing")
	}
	if _, ok := e.kong.Find("routes", "sr-api.example.com_v2"); !ok {
		t.Fatal("registry route missing")
	}
	res = e.reconcile()
	if res.Pushed || e.kong.ConfigPushes() != 1 {
		t.Fatalf("unchanged registry pushed again: %+v", res)
	}
	// Kong restarted empty: the next reconcile pushes again.
	e.kong.Wipe()
	e.reconcile()
	if e.kong.ConfigPushes() != 2 {
		t.Fatal("wiped kong not refilled")
	}
	if _, ok := e.kong.Find("services", "sr-api.example.com_v2"); !ok {
		t.Fatal("registry service missing after refill")
	}
	// DB-less Kong refuses entity writes the way a real one does.
	st, body := e.kongCall("POST", "/plugins", map[string]any{"name": "service-registry"})
	if st != 405 || body["code"] != 12.0 || body["message"] != "cannot create 'plugins' entities when not using a database" {
		t.Fatalf("dbless POST /plugins: %d %v", st, body)
	}
}

func TestRunLoopAppliesChangesAndSurvivesKongOutage(t *testing.T) {
	e := newEnv(t, false, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.rec.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, func() bool { return e.rec.Stats().Leader }, "leader")
	e.register("a.example.com", "/x", "http://x:1", "")
	waitFor(t, func() bool { _, ok := e.kong.Find("routes", "sr-a.example.com_x"); return ok }, "route applied by the loop")
	waitFor(t, func() bool { p, _ := e.rec.Pending(context.Background()); return p == 0 }, "pending 0")

	e.kong.Stop()
	e.register("b.example.com", "/y", "http://y:1", "")
	waitFor(t, func() bool { return e.rec.Stats().Errors > 0 }, "a failed apply while kong is down")
	if p, err := e.rec.Pending(context.Background()); err != nil || p == 0 {
		t.Fatalf("pending while kong down: %d %v", p, err)
	}
	if err := e.kong.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := e.kong.Find("routes", "sr-b.example.com_y"); return ok }, "route applied after kong came back")
	waitFor(t, func() bool { p, _ := e.rec.Pending(context.Background()); return p == 0 }, "pending back to 0")
	if n := len(e.kong.List("services")); n != 2 {
		t.Fatalf("services after outage: %d", n)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testbin.WaitFor(t, 15*time.Second, what, cond)
}

// A route that stops translating (here: its stored options no longer
// validate) keeps its Kong entities instead of losing them.
func TestUntranslatableRouteKeepsItsEntities(t *testing.T) {
	e := newEnv(t, false, "")
	e.register("api.example.com", "/v2", "http://api-v2:9000", `{"timeout":"5s"}`)
	e.register("api.example.com", "/v1", "http://api-v1:9000", "")
	e.reconcile()
	// Corrupt the stored spec behind the store's back.
	key := "sr:v1:{sr-api.example.com_v2}:route"
	spec, err := e.redis.Client().HGet(context.Background(), key, "spec").Result()
	if err != nil {
		t.Fatal(err)
	}
	e.redis.Client().HSet(context.Background(), key, "spec", strings.Replace(spec, `"5s"`, `"5x"`, 1))
	e.register("other.example.com", "/", "http://o:1", "")
	e.reconcile()
	if _, ok := e.kong.Find("services", "sr-api.example.com_v2"); !ok {
		t.Fatal("entities of an untranslatable route were deleted")
	}
	if _, ok := e.kong.Find("services", "sr-other.example.com_"); !ok {
		t.Fatal("a bad route blocked the others")
	}
}

// After a full reconcile, a registry change costs only the writes it needs:
// no list calls, nothing at all when the translation did not change.
func TestApplyChangesWritesOnlyWhatChanged(t *testing.T) {
	e := newEnv(t, false, "")
	e.register("a.example.com", "/x", "http://a:1", "")
	e.reconcile() // full: warms the cache
	ctx := context.Background()

	e.kong.ResetCounts()
	e.register("b.example.com", "/y", "http://b:1", `{"headers":{"X-B":"1"}}`)
	res, err := e.rec.ApplyChangesOnce(ctx)
	if err != nil || res.Created != 6 {
		t.Fatalf("%+v %v", res, err)
	}
	for k := range e.kong.Counts() {
		if strings.HasPrefix(k, "GET ") {
			t.Fatalf("change-triggered apply read kong: %v", e.kong.Counts())
		}
	}
	if _, ok := e.kong.Find("routes", "sr-b.example.com_y"); !ok {
		t.Fatal("new route not written")
	}

	// A change that does not change Kong's entities (a TTL instance's
	// heartbeat) costs no call at all.
	name := registry.ServiceName("a.example.com", "/x")
	if _, err := e.store.PutInstance(ctx, name, registry.Instance{ID: "lease", Address: "10.0.0.1:80", Weight: 10, TTLSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rec.ApplyChangesOnce(ctx); err != nil {
		t.Fatal(err)
	}
	e.kong.ResetCounts()
	if _, err := e.store.Heartbeat(ctx, name, "lease"); err != nil {
		t.Fatal(err)
	}
	if res, err := e.rec.ApplyChangesOnce(ctx); err != nil || res.Changes() != 0 || e.kong.TotalCalls() != 0 {
		t.Fatalf("heartbeat apply: %+v %v %v", res, err, e.kong.Counts())
	}

	// Deregistration deletes without reading.
	if _, err := e.store.DeregisterRoute(ctx, "b.example.com", "/y"); err != nil {
		t.Fatal(err)
	}
	e.kong.ResetCounts()
	if res, err := e.rec.ApplyChangesOnce(ctx); err != nil || res.Deleted != 6 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, ok := e.kong.Find("services", "sr-b.example.com_y"); ok || len(e.kong.List("targets")) != 2 {
		t.Fatalf("deregistered entities left: %v", e.kong.List("targets"))
	}

	// Drift is for full reconciles: a change-triggered apply does not see
	// it, the next full one heals it.
	e.kong.Wipe()
	if _, err := e.rec.ApplyChangesOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.kong.List("services")) != 0 {
		t.Fatal("unexpected: change-triggered apply read kong")
	}
	e.reconcile()
	if _, ok := e.kong.Find("services", name); !ok {
		t.Fatal("full reconcile did not heal")
	}
}

// The lease and applied-generation scripts work on Redis Cluster (one hash
// tag), so adminsvc replicas can share a clustered registry.
func TestRunLoopOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3})
	rdb := cl.Client(t)
	store := registry.NewStore(rdb, registry.Options{})
	fake := kongfake.Start(t, kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": kongfake.RegistrySchema(t)}})
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rdb,
		Interval: time.Hour, Debounce: 20 * time.Millisecond, LeaseTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rec.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { return rec.Stats().Leader }, "leader on cluster")
	if _, _, err := store.RegisterRoute(ctx, registry.Route{Host: "c.example.com", Path: "/", Backend: "http://c:1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, ok := fake.Find("routes", "sr-c.example.com_"); return ok }, "route applied")
	waitFor(t, func() bool { p, err := rec.Pending(ctx); return err == nil && p == 0 }, "pending 0 on cluster")
}
