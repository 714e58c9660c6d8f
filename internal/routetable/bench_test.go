package routetable_test

import (
	"context"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/routetable"
)

// BenchmarkFullLoad10000 times a table's first load of 10 000 routes (one
// ZRANGE, one pipeline of 10 000 HMGETs, decoding, the snapshot).
func BenchmarkFullLoad10000(b *testing.B) {
	e := newEnv(b)
	e.registerMany(b, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb := routetable.New(e.store, routetable.Options{PollInterval: time.Hour, Timeout: 30 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := tb.Wait(ctx); err != nil || tb.Len() != 10000 {
			b.Fatalf("load: %v, %d routes", err, tb.Len())
		}
		cancel()
		tb.Close()
	}
}

// BenchmarkMatch10000 is one lookup among 10 000 routes.
func BenchmarkMatch10000(b *testing.B) {
	e := newEnv(b)
	e.registerMany(b, 10000)
	tb := newTable(b, e.store, routetable.Options{PollInterval: time.Hour})
	wait(b, tb)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if tb.Match("h4242.example.com", "/p4242/some/path") == nil {
			b.Fatal("no match")
		}
	}
}
