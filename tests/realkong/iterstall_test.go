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
		probe := stallProbe(t, k, "plain.stall.example.com")
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
	parallel(t, n, func(i int) error {
		name := fmt.Sprintf("stall-%d", i)
		if err := k.adminJSON("POST", "/services", map[string]any{"name": name, "url": "http://" + be.addr()}, nil); err != nil {
			return err
		}
		return k.adminJSON("POST", "/services/"+name+"/plugins", map[string]any{"name": "service-registry",
			"config": map[string]any{"registry": "kong"}}, nil)
	})
}

// stallProbe returns a probe for Kong k: a client sends GETs to host back
// to back for 3 s, change is made 200 ms in, and the worst latency is
// logged (2.5 s pacing before, so earlier rebuilds are done: the suite's
// 1 s update frequencies).
func stallProbe(t *testing.T, k *kong, host string) func(label string, change func()) {
	return func(label string, change func()) {
		t.Helper()
		time.Sleep(2500 * time.Millisecond)
		c := &http.Client{}
		var stop atomic.Bool
		var worst time.Duration
		var reqs, failed int
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !stop.Load() {
				t0 := time.Now()
				if sendOnce(c, k.proxy+"/", host) != 200 {
					failed++
				}
				worst = max(worst, time.Since(t0))
				reqs++
			}
		}()
		time.Sleep(200 * time.Millisecond)
		change()
		time.Sleep(3 * time.Second)
		stop.Store(true)
		<-done
		if failed > 0 {
			t.Errorf("%s: %d of %d requests not 200", label, failed, reqs)
		}
		t.Logf("kong %s, %s: route without plugin worst %s over %d requests", k.version, label, ms(worst), reqs)
	}
}

// TestKongRegistryShapeStall is TestKongPluginsIteratorStall for what a
// registration writes in plugin scope global (no plugin): with
// SR_ITERSTALL_N (10 000) registered routes' entities in Kong (a service,
// a route with a host, an upstream with one target each, as adminsvc
// writes them, and no plugin), how long does a route without any plugin
// stall when one more route, one more upstream, one more target is added?
func TestKongRegistryShapeStall(t *testing.T) {
	if os.Getenv(envIterStall) == "" {
		t.Skip(envIterStall + " is not set")
	}
	n := envInt(t, envIterStall+"_N", 10000, 1)
	eachKong(t, modeDB, func(t *testing.T, k *kong) {
		be := newBackend(t, "shapestall")
		for _, c := range []struct {
			path string
			body map[string]any
		}{
			{"/services", map[string]any{"name": "stall-plain", "url": "http://" + be.addr()}},
			{"/services/stall-plain/routes", map[string]any{"name": "stall-plain", "hosts": []string{"plain.stall.example.com"}}},
		} {
			if err := k.adminJSON("POST", c.path, c.body, nil); err != nil {
				t.Fatal(err)
			}
		}
		probe := stallProbe(t, k, "plain.stall.example.com")
		probe("empty Kong, route change", func() { addRegistryShape(t, k, be, "first", true, true) })
		// SR_ITERSTALL_UPSTREAMS=0: services on an IP, no upstreams (which
		// part of the shape stalls).
		ups := envInt(t, envIterStall+"_UPSTREAMS", 1, 0) == 1
		t0 := time.Now()
		parallel(t, n, func(i int) error { return writeRegistryShape(k, be, fmt.Sprintf("shape-%d", i), true, ups) })
		t.Logf("kong %s: %d registered routes' entities (upstreams %v) written in %s", k.version, n, ups, time.Since(t0).Round(time.Millisecond))
		// SR_ITERSTALL_QUIET: that many probes without any change first,
		// after 10 s without writes.
		if quiet := envInt(t, envIterStall+"_QUIET", 0, 0); quiet > 0 {
			time.Sleep(10 * time.Second)
			for i := range quiet {
				probe(fmt.Sprintf("%d routes, quiet, no change %d", n, i+1), func() {})
			}
		}
		for i := range 2 {
			probe(fmt.Sprintf("%d routes, one route and service more %d", n, i+1), func() {
				addRegistryShape(t, k, be, fmt.Sprintf("route-%d", i), true, false)
			})
			probe(fmt.Sprintf("%d routes, one upstream and target more %d", n, i+1), func() {
				addRegistryShape(t, k, be, fmt.Sprintf("upstream-%d", i), false, true)
			})
			if !ups {
				continue
			}
			probe(fmt.Sprintf("%d routes, one target more %d", n, i+1), func() {
				if err := k.adminJSON("POST", "/upstreams/shape-0.upstream/targets", map[string]any{"target": fmt.Sprintf("127.0.0.%d:80", i+2)}, nil); err != nil {
					t.Fatal(err)
				}
			})
		}
		probe(fmt.Sprintf("%d routes, no change", n), func() {})
	})
}

func addRegistryShape(t *testing.T, k *kong, be *backendSrv, name string, route, upstream bool) {
	t.Helper()
	if err := writeRegistryShape(k, be, name, route, upstream); err != nil {
		t.Fatal(err)
	}
}

// writeRegistryShape writes what adminsvc writes for one registered route
// in plugin scope global: an upstream with one target, a service on it, a
// route with a host (either half alone when asked).
func writeRegistryShape(k *kong, be *backendSrv, name string, route, upstream bool) error {
	up := name + ".upstream"
	if upstream {
		if err := k.adminJSON("POST", "/upstreams", map[string]any{"name": up}, nil); err != nil {
			return err
		}
		if err := k.adminJSON("POST", "/upstreams/"+up+"/targets", map[string]any{"target": be.addr()}, nil); err != nil {
			return err
		}
	}
	if !route {
		return nil
	}
	host := up
	if !upstream {
		host = "127.0.0.1"
	}
	if err := k.adminJSON("POST", "/services", map[string]any{"name": name, "host": host, "port": 80}, nil); err != nil {
		return err
	}
	return k.adminJSON("POST", "/services/"+name+"/routes", map[string]any{"name": name, "hosts": []string{name + ".example.com"},
		"paths": []string{"/"}}, nil)
}

// parallel runs write(0..n-1), 8 at a time; the first error fails t.
func parallel(t *testing.T, n int, write func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Bool
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n && !failed.Load(); i = int(next.Add(1)) - 1 {
				if err := write(i); err != nil {
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
