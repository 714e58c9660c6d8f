package breaker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// BenchmarkBreaker: Allow + outcome on the request path, ours (with the
// cluster sync running against a real Redis, 50 instances known) vs
// sony/gobreaker's TwoStepCircuitBreaker (one breaker, mutex inside).
func BenchmarkBreaker(b *testing.B) {
	s := redistest.Start(b, redistest.Options{})
	ours, err := New(Options{Redis: s.Client(), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]string, 50)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)
		tk, _ := ours.Allow(addrs[i])
		tk.Done(Success)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ours.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	gb := gobreaker.NewTwoStepCircuitBreaker[any](gobreaker.Settings{Name: "bench", Interval: 10 * time.Second})

	b.Run("serial/ours", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tk, err := ours.Allow(addrs[i%len(addrs)])
			if err != nil {
				b.Fatal(err)
			}
			tk.Done(Success)
		}
	})
	b.Run("serial/ours-record", func(b *testing.B) { // the access/log split: Allow, then Record by address
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			a := addrs[i%len(addrs)]
			if _, err := ours.Allow(a); err != nil {
				b.Fatal(err)
			}
			ours.Record(a, Success)
		}
	})
	b.Run("serial/gobreaker", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			done, err := gb.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(nil)
		}
	})
	b.Run("parallel/ours", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				tk, err := ours.Allow(addrs[i%len(addrs)])
				if err != nil {
					b.Error(err)
					return
				}
				tk.Done(Success)
				i++
			}
		})
	})
	b.Run("parallel/gobreaker", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				done, err := gb.Allow()
				if err != nil {
					b.Error(err)
					return
				}
				done(nil)
			}
		})
	})
	if st := ours.Stats(); st.Syncs == 0 || st.SyncFailures > 0 {
		b.Fatalf("cluster sync not running cleanly: %+v", st)
	}
}
