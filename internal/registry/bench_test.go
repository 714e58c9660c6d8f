package registry_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// BenchmarkStore: the cost of the store's writes and reads against a local
// standalone redis-server, with the Redis commands each makes.
func BenchmarkStore(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	rdb := srv.Client()
	b.Cleanup(func() { _ = rdb.Close() })
	s := registry.NewStore(rdb, registry.Options{})
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := s.PutInstance(ctx, "svc", registry.Instance{ID: fmt.Sprint(i), Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: 1}); err != nil {
			b.Fatal(err)
		}
	}
	run := func(name string, f func(i int) error) {
		b.Run(name, func(b *testing.B) {
			srv.ResetStats()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := f(i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(srv.TotalCalls("config|resetstat", "hello"))/float64(b.N), "redis-cmds/op")
		})
	}
	run("register+deregister", func(i int) error {
		h := fmt.Sprintf("h%d.example.com", i)
		if _, _, err := s.RegisterRoute(ctx, registry.Route{Host: h, Path: "/", Backend: "http://10.0.0.1:80"}); err != nil {
			return err
		}
		_, err := s.DeregisterRoute(ctx, h, "/")
		return err
	})
	run("put-instance", func(i int) error {
		_, err := s.PutInstance(ctx, "svc", registry.Instance{ID: "x", Address: "10.0.0.99:80", Weight: 1 + i%100})
		return err
	})
	run("get-service-10-instances", func(int) error {
		_, err := s.GetService(ctx, "svc")
		return err
	})
	run("service-version", func(int) error {
		_, err := s.ServiceVersion(ctx, "svc")
		return err
	})
}
