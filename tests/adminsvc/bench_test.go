package adminsvc_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// registerMany sends n registrations over HTTP with 16 clients and returns
// how long the API took to acknowledge them all.
func registerMany(b *testing.B, s *svc, prefix string, n int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r := s.do("POST", "/register", fmt.Sprintf(`{"host":"%s%d.example.com","path":"/api","backend":"http://b%d:8080","options":{"timeout":"30s"}}`, prefix, i, i))
				if r.Status != 200 {
					b.Errorf("register: %d %s", r.Status, r.Raw)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkEndToEndRegistrations: registrations/s through the real binary
// (HTTP → Redis) and the time until the Kong fake (DB mode) has them all.
func BenchmarkEndToEndRegistrations(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rs := redistest.Start(b, redistest.Options{})
		k := kongfake.Start(b, kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": nil}})
		s := startSvc(b, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_LOG_LEVEL": "warn", "SR_RECONCILE_INTERVAL": "30s"}})
		for !s.leader() {
			time.Sleep(10 * time.Millisecond)
		}
		k.ResetCounts()
		b.StartTimer()
		start := time.Now()
		acked := registerMany(b, s, "e2e", n)
		// Plugins are written last: when they are all there, so is the rest.
		for len(k.List("plugins")) < n {
			time.Sleep(10 * time.Millisecond)
		}
		inKong := time.Since(start)
		b.ReportMetric(float64(n)/acked.Seconds(), "registrations/s")
		b.ReportMetric(float64(n)/inKong.Seconds(), "in-kong/s")
		b.ReportMetric(float64(k.TotalCalls())/n, "admin-calls/registration")
		b.StopTimer()
		s.Stop()
	}
}

// BenchmarkDBLessBurst1000Registrations: a burst of 1 000 registrations
// through the API causes a handful of POST /config pushes, not 1 000.
func BenchmarkDBLessBurst1000Registrations(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rs := redistest.Start(b, redistest.Options{})
		k := kongfake.Start(b, kongfake.Options{DBLess: true, Plugins: map[string]kongfake.PluginSchema{"service-registry": nil}})
		s := startSvc(b, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_LOG_LEVEL": "warn", "SR_RECONCILE_INTERVAL": "30s"}})
		for !s.leader() {
			time.Sleep(10 * time.Millisecond)
		}
		base := k.ConfigPushes()
		b.StartTimer()
		start := time.Now()
		acked := registerMany(b, s, "burst", n)
		for len(k.List("routes")) < n {
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(float64(n)/acked.Seconds(), "registrations/s")
		b.ReportMetric(time.Since(start).Seconds(), "s-until-in-kong")
		b.ReportMetric(float64(k.ConfigPushes()-base), "config-pushes")
		b.StopTimer()
		s.Stop()
	}
}

func (s *svc) leader() bool {
	h := s.do("GET", "/health", "")
	k, _ := h.Body["kong"].(map[string]any)
	return k["leader"] == true && k["last_apply"] != nil
}
