package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/tests/harness"
)

type benchCase struct {
	name, path string
	lat        []time.Duration
	elapsed    time.Duration
	calls      int64
	events     int64
	requests   int64
}

// BenchmarkThroughHarness measures one Kong (harness) node in one run: a
// route without the plugin, the plugin with registry = kong, and the plugin
// doing Redis discovery. 10 concurrent clients send real HTTP requests; the
// cases alternate in 5 rounds so that load from elsewhere on the machine hits
// them alike. PDK calls and events are counted by the harness.
//
//	go test -run '^$' -bench BenchmarkThroughHarness -benchtime 5000x ./tests/e2e/
func BenchmarkThroughHarness(b *testing.B) {
	e := newEnv(b, envOptions{instances: map[string]int{"a": 1, "b": 1, "c": 1}})
	e.kong.KeepRequestStats(false)
	plain := newBackend(b, "plain")
	e.kong.AddService(harness.Service{Name: "plain", Host: plain.host, Port: plain.port})
	e.kong.AddService(harness.Service{Name: "kongmode", Host: plain.host, Port: plain.port})
	for _, r := range []harness.Route{
		{Name: "plain", Service: "plain", Paths: []string{"/plain"}},
		{Name: "kongmode", Service: "kongmode", Paths: []string{"/kong"}},
	} {
		if _, err := e.kong.AddRoute(r); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.kong.AddPlugin(harness.PluginConfig{Service: "kongmode", Config: map[string]any{"registry": "kong"}}); err != nil {
		b.Fatal(err)
	}
	cases := []*benchCase{
		{name: "no plugin", path: "/plain"},
		{name: "registry = kong", path: "/kong"},
		{name: "discovery", path: "/orders"},
	}
	if wired(b, "internal/ratelimit") && wired(b, "internal/breaker") {
		// Same discovery, plus a rate limit by IP that is never reached and
		// the breaker on: the full per-request cost of DESIGN decision 7.
		e.kong.AddService(harness.Service{Name: "full", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
		if _, err := e.kong.AddRoute(harness.Route{Name: "full", Service: "full", Paths: []string{"/full"}}); err != nil {
			b.Fatal(err)
		}
		cfg := discoveryConfig(e.redis)
		cfg["rate_limit"] = map[string]any{"enabled": true, "requests_per_second": 1000000, "limit_by": "ip"}
		cfg["circuit_breaker"] = map[string]any{"enabled": true}
		if _, err := e.kong.AddPlugin(harness.PluginConfig{Service: "full", Config: cfg}); err != nil {
			b.Fatal(err)
		}
		cases = append(cases, &benchCase{name: "discovery + rate limit + breaker", path: "/full"})
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, c := range cases {
		e.load(100, 10, c.path) // instance start, first snapshot, keepalive pools
	}
	if err := e.kong.WaitIdle(e.ctx()); err != nil {
		b.Fatal(err)
	}
	const rounds = 5
	per := b.N / rounds
	if per < 1 {
		per = 1
	}
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		for _, c := range cases {
			before := e.kong.Totals()
			lat, elapsed, failed := drive(client, e.kong.URL()+c.path, per, 10)
			if failed > 0 {
				b.Fatalf("%s: %d of %d requests failed", c.name, failed, per)
			}
			if err := e.kong.WaitIdle(e.ctx()); err != nil {
				b.Fatal(err)
			}
			after := e.kong.Totals()
			c.lat = append(c.lat, lat...)
			c.elapsed += elapsed
			c.calls += after.Calls - before.Calls
			c.events += after.Events - before.Events
			c.requests += after.Requests - before.Requests
		}
	}
	b.StopTimer()
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| route | requests/s (c=10) | ratio | p50 | p99 | PDK calls/req | events/req |\n|---|---|---|---|---|---|---|\n")
	base := 0.0
	for i, c := range cases {
		sort.Slice(c.lat, func(i, j int) bool { return c.lat[i] < c.lat[j] })
		rps := float64(len(c.lat)) / c.elapsed.Seconds()
		if i == 0 {
			base = rps
		}
		p50, p99 := c.lat[len(c.lat)/2], c.lat[len(c.lat)*99/100]
		key := strings.NewReplacer(" ", "", "=", "_", "+", "_").Replace(c.name)
		b.ReportMetric(rps, key+"-req/s")
		b.ReportMetric(float64(p50.Microseconds()), key+"-p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), key+"-p99-µs")
		fmt.Fprintf(&tbl, "| %s | %.0f | %.2f× | %d µs | %d µs | %.2f | %.2f |\n", c.name, rps, rps/base,
			p50.Microseconds(), p99.Microseconds(), float64(c.calls)/float64(c.requests), float64(c.events)/float64(c.requests))
	}
	if b.N >= 100 {
		b.Log(tbl.String())
	}
}

// drive sends n GET requests to url from c workers and returns the latencies.
func drive(client *http.Client, url string, n, c int) ([]time.Duration, time.Duration, int64) {
	lat := make([]time.Duration, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), failed.Load()
}
