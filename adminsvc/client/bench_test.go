package client_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
)

// Round trips through the client to a real adminsvc and Redis on loopback
// (API rate limit off; Kong unreachable, so no Kong writes are measured).
func BenchmarkClient(b *testing.B) {
	reg := clienttest.Start(b, clienttest.Options{Env: []string{"SR_RATE_LIMIT=0"}})
	c, err := client.New(reg.URL)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if _, err := c.Register(ctx, client.Registration{Host: fmt.Sprintf("h%d.example.com", i), Path: "/", Backend: "http://b:1"}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("register-idempotent", func(b *testing.B) {
		r := client.Registration{Host: "h1.example.com", Path: "/", Backend: "http://b:1"}
		for b.Loop() {
			if _, err := c.Register(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("routes-50", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Routes(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("heartbeat", func(b *testing.B) {
		if _, err := c.PutInstance(ctx, "bench", "i1", client.InstanceSpec{Address: "10.0.0.1:80", TTLSeconds: 60}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := c.Heartbeat(ctx, "bench", "i1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
