package kongsync_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// TestRealKongFastPath syncs the fast path's catch-all to real Kongs, DB
// mode (SR_TEST_KONG_ADMIN) and DB-less (SR_TEST_KONG_DBLESS_ADMIN), as
// TestRealKongDBMode and TestRealKongDBLessKeepsOperatorEntities do: Kong
// accepts it (the plugin binary Kong runs must know fast_path), a second
// reconcile finds Kong's form of it equal (no false drift), a deleted
// catch-all route is recreated, and fast path off removes it all.
func TestRealKongFastPath(t *testing.T) {
	db := strings.Fields(os.Getenv("SR_TEST_KONG_ADMIN"))
	dbless := strings.Fields(os.Getenv("SR_TEST_KONG_DBLESS_ADMIN"))
	if len(db)+len(dbless) == 0 {
		t.Skip("SR_TEST_KONG_ADMIN and SR_TEST_KONG_DBLESS_ADMIN not set")
	}
	for _, u := range db {
		t.Run("db "+u, func(t *testing.T) { realKongFastPath(t, u, kongsync.ModeDB) })
	}
	for _, u := range dbless {
		t.Run("dbless "+u, func(t *testing.T) { realKongFastPath(t, u, kongsync.ModeDBLess) })
	}
}

func realKongFastPath(t *testing.T, adminURL, mode string) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: adminURL, Mode: mode, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reconcile := func(fast bool) kongsync.Result {
		t.Helper()
		rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client(),
			Translate: translator.Options{FastPath: fast, Redis: map[string]any{"host": "127.0.0.1", "port": rs.Port, "timeout_ms": 500}}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := rec.ReconcileOnce(ctx)
		if err != nil || len(res.Refused) > 0 {
			t.Fatalf("reconcile (fast path %v): %+v %v", fast, res, err)
		}
		return res
	}
	if _, _, err := store.RegisterRoute(ctx, registry.Route{Host: "real.example.com", Path: "/a", Backend: "http://127.0.0.1:9/"}); err != nil {
		t.Fatal(err)
	}
	reconcile(true)
	for _, p := range []string{"/services/sr-fast-path", "/routes/sr-fast-path", "/upstreams/sr-fast-path.upstream", "/routes/sr-real.example.com_a"} {
		if code := get(t, adminURL+p); code != http.StatusOK {
			t.Fatalf("%s: %d", p, code)
		}
	}
	if st := s.Status(); st.FastPath != kongsync.FastPathOn {
		t.Fatalf("status %+v", st)
	}
	if res := reconcile(true); res.Changes() != 0 || res.Pushed {
		t.Fatalf("second reconcile not a no-op: %+v", res)
	}
	// Sent without hosts, Kong holds null (not [], which Kong's default
	// router ranks as a plain host: priority_test.go).
	if h := routeHosts(t, adminURL); h != "null" {
		t.Fatalf("catch-all hosts %s", h)
	}
	if mode == kongsync.ModeDB {
		// hosts [] (adminsvc before the fix wrote that) is written once.
		req, _ := http.NewRequest(http.MethodPatch, adminURL+"/routes/sr-fast-path", strings.NewReader(`{"hosts":[]}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("patching hosts []: %v %v", resp, err)
		}
		resp.Body.Close()
		if res := reconcile(true); res.Updated != 1 || res.Changes() != 1 || routeHosts(t, adminURL) != "null" {
			t.Fatalf("healing hosts []: %+v", res)
		}
		if res := reconcile(true); res.Changes() != 0 {
			t.Fatalf("after healing hosts []: %+v", res)
		}
		req, _ = http.NewRequest(http.MethodDelete, adminURL+"/routes/sr-fast-path", nil)
		resp, err = http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("deleting the catch-all route: %v %v", resp, err)
		}
		resp.Body.Close()
		if res := reconcile(true); res.Created != 1 || get(t, adminURL+"/routes/sr-fast-path") != http.StatusOK {
			t.Fatalf("catch-all route not recreated: %+v", res)
		}
	}
	reconcile(false)
	for _, p := range []string{"/services/sr-fast-path", "/routes/sr-fast-path", "/upstreams/sr-fast-path.upstream"} {
		if code := get(t, adminURL+p); code != http.StatusNotFound {
			t.Fatalf("%s after fast path off: %d", p, code)
		}
	}
	// Leave Kong as found: nothing of ours.
	if _, err := store.DeregisterRoute(ctx, "real.example.com", "/a"); err != nil {
		t.Fatal(err)
	}
	reconcile(false)
}

// routeHosts is the catch-all route's hosts as Kong's Admin API writes it.
func routeHosts(t *testing.T, adminURL string) string {
	t.Helper()
	resp, err := http.Get(adminURL + "/routes/sr-fast-path")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rt struct {
		Hosts json.RawMessage `json:"hosts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rt); err != nil {
		t.Fatal(err)
	}
	return string(rt.Hosts)
}
