package realkong

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// envIterStall turns TestKongPluginsIteratorStall on (BENCHMARKS.md).
const envIterStall = "SR_ITERSTALL"

// TestKongPluginsIteratorStall measures what issue 16's DB-mode misses
// pointed at: how long Kong's one worker stops answering a route without
// any plugin while it rebuilds its plugins iterator, with no plugins and
// then with SR_ITERSTALL_N (10 000) service-scoped service-registry plugin
// entities (adminsvc writes one per registered route), against a
// router-only change and no change. DB mode, the suite's 1 s update
// frequencies. Each probe: a client sends GETs back to back for 3 s, the
// change is made 200 ms in; the worst latency is logged.
func TestKongPluginsIteratorStall(t *testing.T) {
	if os.Getenv(envIterStall) == "" {
		t.Skip(envIterStall + " is not set")
	}
	n := envInt(t, envIterStall+"_N", 10000, 1)
	eachKong(t, modeDB, func(t *testing.T, k *kong) {
		be := newBackend(t, "iterstall")
		var toggled map[string]any
		for _, c := range []struct {
			path string
			body map[string]any
			out  any
		}{
			{"/services", map[string]any{"name": "stall-plain", "url": "http://" + be.addr()}, nil},
			{"/services/stall-plain/routes", map[string]any{"name": "stall-plain", "hosts": []string{"plain.stall.example.com"}}, nil},
			// A disabled plugin whose config is toggled: each toggle is one
			// plugins-iterator rebuild and nothing else.
			{"/services/stall-plain/plugins", map[string]any{"name": "request-termination", "enabled": false,
				"config": map[string]any{"status_code": 418}}, &toggled},
		} {
			if err := k.adminJSON("POST", c.path, c.body, c.out); err != nil {
				t.Fatal(err)
			}
		}
		code := 418
		pluginChange := func() {
			code = 418 + 419 - code
			if err := k.adminJSON("PATCH", "/plugins/"+toggled["id"].(string), map[string]any{"config": map[string]any{"status_code": code}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		probe := func(label string, change func()) {
			t.Helper()
			time.Sleep(2500 * time.Millisecond) // pacing: earlier rebuilds done (1 s frequencies)
			c := &http.Client{}
			var stop atomic.Bool
			var worst time.Duration
			var reqs, failed int
			done := make(chan struct{})
			go func() {
				defer close(done)
				for !stop.Load() {
					t0 := time.Now()
					if sendOnce(c, k.proxy+"/", "plain.stall.example.com") != 200 {
						failed++
					}
					worst = max(worst, time.Since(t0))
					reqs++
				}
			}()
			time.Sleep(200 * time.Millisecond)
			change()
			time.Sleep(3 * time.Second) // pacing: three rebuild periods
			stop.Store(true)
			<-done
			if failed > 0 {
				t.Errorf("%s: %d of %d requests not 200", label, failed, reqs)
			}
			t.Logf("kong %s, %s: route without plugin worst %s over %d requests", k.version, label, ms(worst), reqs)
		}
		probe("no extra plugins, plugin change", pluginChange)
		t0 := time.Now()
		addPlugins(t, k, be, n)
		t.Logf("kong %s: %d services with a service-registry plugin each written in %s", k.version, n, time.Since(t0).Round(time.Millisecond))
		for i := range 4 {
			probe(fmt.Sprintf("%d plugins, plugin change %d", n, i+1), pluginChange)
		}
		for i := range 2 {
			probe(fmt.Sprintf("%d plugins, router-only change %d", n, i+1), func() {
				if err := k.adminJSON("POST", "/services/stall-plain/routes", map[string]any{"name": fmt.Sprintf("stall-r%d", i),
					"hosts": []string{fmt.Sprintf("r%d.stall.example.com", i)}}, nil); err != nil {
					t.Fatal(err)
				}
			})
		}
		probe(fmt.Sprintf("%d plugins, no change", n), func() {})
	})
}

// addPlugins writes n services, each with a service-registry plugin
// (registry = kong: no Redis needed), 8 at a time.
func addPlugins(t *testing.T, k *kong, be *backendSrv, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Bool
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n && !failed.Load(); i = int(next.Add(1)) - 1 {
				name := fmt.Sprintf("stall-%d", i)
				if err := k.adminJSON("POST", "/services", map[string]any{"name": name, "url": "http://" + be.addr()}, nil); err != nil {
					t.Error(err)
					failed.Store(true)
					return
				}
				if err := k.adminJSON("POST", "/services/"+name+"/plugins", map[string]any{"name": "service-registry",
					"config": map[string]any{"registry": "kong"}}, nil); err != nil {
					t.Error(err)
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
}
