package main

import (
	"fmt"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// countingKong counts PDK calls without allocating.
type countingKong struct {
	setTarget, exit, router, setHeaders, ip, serialize, other int
	doc                                                       string // what Serialize returns
}

func (c *countingKong) SetTarget(string, int) error                  { c.setTarget++; return nil }
func (c *countingKong) Exit(int, []byte)                             { c.exit++ }
func (c *countingKong) RouterService() (string, string, error)       { c.router++; return "id", "name", nil }
func (c *countingKong) ExitHeaders(int, []byte, map[string][]string) { c.exit++ }
func (c *countingKong) SetHeaders(map[string][]string) error         { c.setHeaders++; return nil }
func (c *countingKong) ForwardedIP() (string, error)                 { c.ip++; return "10.9.9.9", nil }
func (c *countingKong) ConsumerID() (string, error)                  { c.other++; return "", nil }
func (c *countingKong) RequestHeader(string) (string, error)         { c.other++; return "", nil }
func (c *countingKong) Serialize() (string, error)                   { c.serialize++; return c.doc, nil }

// BenchmarkAccess is the plugin's own work per request in the access phase
// (PDK transport excluded), against real Redis, with the PDK calls and
// Redis commands it makes per request.
func BenchmarkAccess(b *testing.B) {
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
	if err := c.UnmarshalJSON([]byte(fmt.Sprintf(`{"registry":"redis","service":"bench","redis":{"port":%d}}`, srv.Port))); err != nil {
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
