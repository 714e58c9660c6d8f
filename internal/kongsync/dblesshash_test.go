package kongsync_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// Kong loses the config between our push and the configuration_hash read
// that follows it (a restart, or an operator wiping it): the read gives
// Kong's empty hash. The next full reconcile must push again instead of
// taking the empty hash for ours. Under a CPU hog tests/adminsvc
// TestFastPathCatchAllDBLess wiped the fake in that window, and adminsvc
// never pushed again.
func TestDBLessConfigLostRightAfterPush(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	fake := kongfake.Start(t, kongfake.Options{DBLess: true, Plugins: map[string]kongfake.PluginSchema{
		"service-registry": kongfake.RegistrySchema(t),
	}})
	// A proxy to the fake that wipes it once, right after a push answered.
	var wipeNext atomic.Bool
	target, _ := url.Parse(fake.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.ServeHTTP(w, r)
		if r.Method == http.MethodPost && r.URL.Path == "/config" && wipeNext.CompareAndSwap(true, false) {
			fake.Wipe()
		}
	}))
	t.Cleanup(proxy.Close)
	e := newEnvVia(t, rs, store, fake, proxy.URL, "")
	e.register("api.example.com", "/v1", "http://api-v1:8080", "")

	wipeNext.Store(true)
	if res := e.reconcile(); !res.Pushed {
		t.Fatalf("first reconcile did not push: %+v", res)
	}
	if _, ok := fake.Find("routes", "sr-api.example.com_v1"); ok {
		t.Fatal("the fake was not wiped after the push")
	}
	if res := e.reconcile(); !res.Pushed {
		t.Fatalf("the config Kong lost right after the push was not pushed again: %+v", res)
	}
	if _, ok := fake.Find("routes", "sr-api.example.com_v1"); !ok {
		t.Fatal("our route is not back in kong")
	}
	// Kong keeps it now: the next reconcile finds its hash and pushes nothing.
	if res := e.reconcile(); res.Pushed {
		t.Fatalf("pushed again with Kong in sync: %+v", res)
	}
}
