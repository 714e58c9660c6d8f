package kongsync_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// TestRealKongDBMode syncs to a real Kong in Postgres mode whose Admin API
// is SR_TEST_KONG_ADMIN (space-separated for several, e.g. a 3.4.2 and a
// 3.9.3); skipped without it. Start one with
//
//	KONG_DATABASE=postgres KONG_PG_DATABASE=<yours> KONG_ADMIN_PORT=... \
//	  /opt/realkong/bin/kong-start.sh bin/service-registry -
//
// The Kong must hold no entity tagged managed-by:service-registry before.
func TestRealKongDBMode(t *testing.T) {
	urls := strings.Fields(os.Getenv("SR_TEST_KONG_ADMIN"))
	if len(urls) == 0 {
		t.Skip("SR_TEST_KONG_ADMIN not set")
	}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) { realKongDBMode(t, u) })
	}
}

func realKongDBMode(t *testing.T, adminURL string) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: adminURL, Mode: kongsync.ModeDB, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing managed in Kong: the first full reconcile must still work.
	if _, err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatalf("reconcile of an empty registry: %v", err)
	}
	if _, _, err := store.RegisterRoute(ctx, registry.Route{Host: "real.example.com", Path: "/a", Backend: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	res, err := rec.ReconcileOnce(ctx)
	if err != nil || res.Created == 0 {
		t.Fatalf("reconcile: %+v %v", res, err)
	}
	if code := get(t, adminURL+"/routes/sr-real.example.com_a"); code != http.StatusOK {
		t.Fatalf("route in kong: %d", code)
	}
	res, err = rec.ReconcileOnce(ctx)
	if err != nil || res.Changes() != 0 {
		t.Fatalf("second reconcile not a no-op: %+v %v", res, err)
	}
	if _, err := store.DeregisterRoute(ctx, "real.example.com", "/a"); err != nil {
		t.Fatal(err)
	}
	if res, err = rec.ReconcileOnce(ctx); err != nil || res.Deleted == 0 {
		t.Fatalf("reconcile after deregister: %+v %v", res, err)
	}
	// Nothing managed left again.
	if _, err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatalf("reconcile with nothing managed left: %v", err)
	}
	if code := get(t, adminURL+"/routes/sr-real.example.com_a"); code != http.StatusNotFound {
		t.Fatalf("route still in kong: %d", code)
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRealKongDBLessKeepsOperatorEntities pushes to real DB-less Kongs
// (SR_TEST_KONG_DBLESS_ADMIN, space-separated) started with a config holding
// a service "operator-svc" and an upstream "op-up" (see kong-start.sh),
// without a base config: both must survive every push.
func TestRealKongDBLessKeepsOperatorEntities(t *testing.T) {
	urls := strings.Fields(os.Getenv("SR_TEST_KONG_DBLESS_ADMIN"))
	if len(urls) == 0 {
		t.Skip("SR_TEST_KONG_DBLESS_ADMIN not set")
	}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) { realKongDBLess(t, u) })
	}
}

func realKongDBLess(t *testing.T, adminURL string) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: adminURL, Mode: kongsync.ModeDBLess, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	operator := func() {
		t.Helper()
		for _, p := range []string{"/services/operator-svc", "/upstreams/op-up"} {
			if code := get(t, adminURL+p); code != http.StatusOK {
				t.Fatalf("%s after our push: %d", p, code)
			}
		}
	}
	operator()
	if _, _, err := store.RegisterRoute(ctx, registry.Route{Host: "real.example.com", Path: "/a", Backend: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	if res, err := rec.ReconcileOnce(ctx); err != nil || !res.Pushed {
		t.Fatalf("reconcile: %+v %v", res, err)
	}
	operator()
	if code := get(t, adminURL+"/routes/sr-real.example.com_a"); code != http.StatusOK {
		t.Fatalf("our route: %d", code)
	}
	if _, err := store.DeregisterRoute(ctx, "real.example.com", "/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	operator()
	if code := get(t, adminURL+"/routes/sr-real.example.com_a"); code != http.StatusNotFound {
		t.Fatalf("our route after deregistering: %d", code)
	}
}
