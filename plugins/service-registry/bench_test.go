package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// countingKong counts PDK calls without allocating.
type countingKong struct {
	setTarget, exit, router, setHeaders, ip, serialize, other int
	doc                                                       string // what Serialize returns
}

func (c *countingKong) SetTarget(string, int) error            { c.setTarget++; return nil }
func (c *countingKong) Exit(int, []byte)                       { c.exit++ }
func (c *countingKong) SetUpstreamHost(string) error           { c.other++; return nil }
func (c *countingKong) RouterService() (string, string, error) { c.router++; return "id", "name", nil }
func (c *countingKong) RouterRoute() (string, string, error) {
	c.router++
	return "route-id", "id", nil
}
func (c *countingKong) ExitHeaders(int, []byte, map[string][]string) { c.exit++ }
func (c *countingKong) SetHeaders(map[string][]string) error         { c.setHeaders++; return nil }
func (c *countingKong) ForwardedIP() (string, error)                 { c.ip++; return "10.9.9.9", nil }
func (c *countingKong) ConsumerID() (string, error)                  { c.other++; return "", nil }
func (c *countingKong) RequestHeader(string) (string, error)         { c.other++; return "", nil }
func (c *countingKong) Serialize() (string, error)                   { c.serialize++; return c.doc, nil }
func (c *countingKong) RequestPath() (string, error)                 { c.other++; return "/", nil }
func (c *countingKong) SetPath(string) error                         { c.other++; return nil }
func (c *countingKong) SetScheme(string) error                       { c.other++; return nil }
func (c *countingKong) NginxVar(string) (string, error)              { c.other++; return "", nil }
func (c *countingKong) SetShared(string, string) error               { c.other++; return nil }
func (c *countingKong) GetShared(string) (string, error)             { c.other++; return "", nil }

// BenchmarkAccess is the plugin's own work per request in the access phase
// (PDK transport excluded), against real Redis, with the PDK calls and
// Redis commands it makes per request.
func BenchmarkAccess(b *testing.B) { benchAccess(b, false) }

// BenchmarkAccessScraped is BenchmarkAccess while a Prometheus registry
// with the plugin's collector is gathered every 10 ms (a scrape every 15 s
// is usual): the request path only adds to atomics, so this must match
// BenchmarkAccess within noise.
func BenchmarkAccessScraped(b *testing.B) { benchAccess(b, true) }

func benchAccess(b *testing.B, scraped bool) {
	if scraped {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collector{version: "bench"}, redisSeconds, redisErrors)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := reg.Gather(); err != nil {
						b.Error(err)
					}
				}
			}
		}()
		b.Cleanup(func() { close(stop); <-done })
	}
	srv := redistest.Start(b, redistest.Options{})
	rdb := srv.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	store := registry.NewStore(rdb, registry.Options{})
	for i := 0; i < 3; i++ {
		if _, err := store.PutInstance(b.Context(), "bench", registry.Instance{ID: fmt.Sprint(i), Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: i + 1}); err != nil {
			b.Fatal(err)
		}
	}
	var c Config
	if err := c.UnmarshalJSON([]byte(fmt.Sprintf(`{"registry":"redis","service":"bench","redis":{"port":%d,"timeout_ms":5000}}`, srv.Port))); err != nil {
		b.Fatal(err)
	}
	k := &countingKong{}
	c.access(k) // first load
	*k = countingKong{}
	srv.ResetStats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.access(k)
	}
	b.StopTimer()
	if k.exit != 0 || k.setTarget != b.N {
		b.Fatalf("calls %+v for %d requests", *k, b.N)
	}
	b.ReportMetric(float64(k.setTarget+k.exit+k.router)/float64(b.N), "pdk-calls/op")
	b.ReportMetric(float64(srv.TotalCalls("config|resetstat", "hello"))/float64(b.N), "redis-cmds/op")
}

// realisticDoc is a kong.log.serialize document of the size Kong sends for
// a small GET (request and response headers, latencies, service, route).
func realisticDoc(ip string, port int) string {
	return fmt.Sprintf(`{"request":{"uri":"/orders/42","method":"GET","url":"http://api.example.com:8000/orders/42",`+
		`"headers":{"host":"api.example.com","user-agent":"curl/8.5.0","accept":"*/*","x-request-id":"0b9f3c1e-5d7a-4e2b-9c1f-3a6b8d2e4f10"},`+
		`"querystring":{},"size":128,"id":"3f2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d"},"upstream_uri":"/orders/42",`+
		`"response":{"status":200,"size":412,"headers":{"content-type":"application/json","content-length":"64","connection":"close",`+
		`"x-kong-upstream-latency":"2","x-kong-proxy-latency":"1","via":"1.1 kong/3.9.3"}},`+
		`"tries":[{"ip":%q,"port":%d,"balancer_start":1732370000000,"balancer_latency":0}],`+
		`"latencies":{"kong":1,"proxy":2,"request":3,"receive":0},`+
		`"service":{"id":"5b1a6f8e-1f0d-4b0a-9a56-0d6f1c3e2b7a","name":"orders","host":"127.0.0.1","port":9,"protocol":"http","retries":5,"connect_timeout":60000,"read_timeout":60000,"write_timeout":60000},`+
		`"route":{"id":"0c7d5e9a-3b2f-4f61-8e4d-7a9b1c2d3e4f","name":"orders","paths":["/orders"],"strip_path":true,"protocols":["http","https"]},`+
		`"client_ip":"10.9.9.9","started_at":1732370000000,"source":"upstream","workspace":"0dc6f45b-8f8d-40d2-a504-473544ee190b","workspace_name":"default"}`, ip, port)
}

// BenchmarkGuards is the plugin's own work per proxied request (access and
// log events, PDK transport excluded) with the guards off and on, against
// one real Redis, with the PDK calls and Redis commands per request.
func BenchmarkGuards(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	rdb := srv.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	store := registry.NewStore(rdb, registry.Options{})
	for i := 0; i < 3; i++ {
		if _, err := store.PutInstance(b.Context(), "gb", registry.Instance{ID: fmt.Sprint(i), Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: 1}); err != nil {
			b.Fatal(err)
		}
	}
	// Limits that never deny: the admitted path (one EVALSHA per request).
	const rl = `"rate_limit":{"enabled":true,"requests_per_second":1000000,"burst":1000000,"per_ip":true}`
	const cb = `"circuit_breaker":{"enabled":true}`
	for _, bc := range []struct{ name, sections string }{
		{"off", ``},
		{"ratelimit-ip", `,` + rl},
		{"breaker", `,` + cb},
		{"ratelimit-ip+breaker", `,` + rl + `,` + cb},
	} {
		for _, withLog := range []bool{false, true} {
			name := bc.name + "/access"
			if withLog {
				name = bc.name + "/access+log"
			}
			b.Run(name, func(b *testing.B) {
				var c Config
				js := fmt.Sprintf(`{"registry":"redis","service":"gb","__plugin_id":"bench-%s","redis":{"port":%d,"timeout_ms":200}%s}`, bc.name, srv.Port, bc.sections)
				if err := c.UnmarshalJSON([]byte(js)); err != nil {
					b.Fatal(err)
				}
				docs := []string{realisticDoc("10.0.0.0", 80), realisticDoc("10.0.0.1", 80), realisticDoc("10.0.0.2", 80)}
				k := &countingKong{doc: docs[0]}
				c.access(k) // first load
				c.log(k)
				*k = countingKong{}
				srv.ResetStats()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k.doc = docs[i%3]
					c.access(k)
					if withLog {
						c.log(k)
					}
				}
				b.StopTimer()
				if k.exit != 0 || k.setTarget != b.N {
					b.Fatalf("calls %+v for %d requests", *k, b.N)
				}
				calls := k.setTarget + k.exit + k.router + k.setHeaders + k.ip + k.serialize + k.other
				b.ReportMetric(float64(calls)/float64(b.N), "pdk-calls/op")
				// Scripts sent (commandstats also counts the commands a script
				// runs inside Redis: TIME, GET, SET).
				cs := srv.CommandCalls()
				b.ReportMetric(float64(cs["evalsha"]+cs["eval"])/float64(b.N), "redis-scripts/op")
			})
		}
	}
}
