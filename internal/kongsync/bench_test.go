package kongsync_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

const benchRoutes = 10000

// fill registers n routes straight into the store, 16 writers at a time.
func fill(b *testing.B, store *registry.Store, n int) {
	b.Helper()
	var wg sync.WaitGroup
	ch := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				_, _, err := store.RegisterRoute(context.Background(), registry.Route{
					Host: fmt.Sprintf("h%d.example.com", i%500), Path: fmt.Sprintf("/p%d", i),
					Backend: fmt.Sprintf("http://b%d:8080", i), Options: []byte(`{"timeout":"30s"}`),
				})
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

func benchEnv(b *testing.B, dbless bool, opts ...translator.Options) (*registry.Store, *kongfake.Fake, *kongsync.Reconciler) {
	rs := redistest.Start(b, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	fake := kongfake.Start(b, kongfake.Options{DBLess: dbless, Plugins: map[string]kongfake.PluginSchema{"service-registry": nil}})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: fake.URL(), Concurrency: 8, Timeout: 30 * time.Second, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client(),
		Debounce: 200 * time.Millisecond, MaxDelay: 2 * time.Second, Interval: time.Hour, Logger: quiet})
	if len(opts) > 0 {
		rec, err = kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client(),
			Debounce: 200 * time.Millisecond, MaxDelay: 2 * time.Second, Interval: time.Hour, Logger: quiet, Translate: opts[0]})
	}
	if err != nil {
		b.Fatal(err)
	}
	return store, fake, rec
}

func reads(counts map[string]int) (get, write int) {
	for k, v := range counts {
		if strings.HasPrefix(k, "GET ") {
			get += v
		} else {
			write += v
		}
	}
	return
}

// BenchmarkApply10kRoutesDBMode: one reconcile that creates 10 000 routes'
// entities (service, route, upstream, target, plugin each) in an empty Kong.
func BenchmarkApply10kRoutesDBMode(b *testing.B) {
	store, fake, rec := benchEnv(b, false)
	fill(b, store, benchRoutes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fake.Wipe()
		fake.ResetCounts()
		b.StartTimer()
		res, err := rec.ReconcileOnce(context.Background())
		if err != nil || res.Created != 5*benchRoutes {
			b.Fatalf("apply: %+v %v", res, err)
		}
		get, write := reads(fake.Counts())
		b.ReportMetric(float64(get+write), "admin-calls/op")
		b.ReportMetric(float64(write), "writes/op")
	}
}

// BenchmarkReconcile10kNoDriftDBMode: reconciling 10 000 routes that Kong
// already has costs only list calls (O(pages)), never one per entity.
func BenchmarkReconcile10kNoDriftDBMode(b *testing.B) { benchNoDrift(b) }

// BenchmarkReconcile10kNoDriftDBModeFastPath: the same with the fast path
// on, whose reconcile lists every route (not only ours) to see an
// operator's catch-all: the same pages when Kong holds only ours.
func BenchmarkReconcile10kNoDriftDBModeFastPath(b *testing.B) {
	benchNoDrift(b, translator.Options{FastPath: true})
}

func benchNoDrift(b *testing.B, opts ...translator.Options) {
	store, fake, rec := benchEnv(b, false, opts...)
	fill(b, store, benchRoutes)
	if _, err := rec.ReconcileOnce(context.Background()); err != nil {
		b.Fatal(err)
	}
	if _, err := rec.ReconcileOnce(context.Background()); err != nil { // past the first deep pass
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fake.ResetCounts()
		res, err := rec.ReconcileOnce(context.Background())
		if err != nil || res.Changes() != 0 {
			b.Fatalf("no-drift reconcile: %+v %v", res, err)
		}
		get, write := reads(fake.Counts())
		if write != 0 {
			b.Fatalf("no-drift reconcile wrote %d times", write)
		}
		b.ReportMetric(float64(get), "admin-calls/op")
	}
}

// BenchmarkDBLessBurst1000: 1 000 registrations arriving at once become a
// handful of POST /config pushes (the loop debounces the change feed).
func BenchmarkDBLessBurst1000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		store, fake, rec := benchEnv(b, true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = rec.Run(ctx) }()
		for !rec.Stats().Leader {
			time.Sleep(5 * time.Millisecond)
		}
		base := fake.ConfigPushes()
		b.StartTimer()
		start := time.Now()
		fill(b, store, 1000)
		for len(fake.List("services")) < 1000 {
			time.Sleep(5 * time.Millisecond)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-kong")
		b.ReportMetric(float64(fake.ConfigPushes()-base), "config-pushes")
		cancel()
		<-done
	}
}
