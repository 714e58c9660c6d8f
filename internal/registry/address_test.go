package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

func TestSplitAddress(t *testing.T) {
	good := map[string]int{"10.0.0.1:80": 80, "[::1]:9000": 9000, "api-1.svc.cluster.local:8080": 8080,
		"API-1:443": 443, "my_service.docker:1": 1, "h:65535": 65535}
	for a, port := range good {
		if _, p, ok := registry.SplitAddress(a); !ok || p != port {
			t.Errorf("%q refused (port %d)", a, p)
		}
	}
	for _, a := range []string{"10.0.0.1:80\r\nX: y", "evil\r\nX-Injected: 1:80", "a b:80", "h\x00:80", "10.0.0.1",
		"http://10.0.0.1:80", "10.0.0.1:0", "10.0.0.1:70000", " 10.0.0.1:80", "[::1]:80/x", "h:080", "-h:80", "h..x:80", ":80", "h:+80"} {
		if _, _, ok := registry.SplitAddress(a); ok {
			t.Errorf("%q accepted", a)
		}
	}
}

// The store refuses an address whose host could split the proxied request
// (its host becomes Kong's upstream Host header), whoever writes it.
func TestStoreRefusesInjectableAddress(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := registry.NewStore(srv.Client(), registry.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.PutInstance(ctx, "orders", registry.Instance{ID: "x", Address: "evil\r\nX-Injected: 1:80", Weight: 1})
	if !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("CR/LF address: %v, want ErrInvalid", err)
	}
	if _, err := s.GetService(ctx, "orders"); !errors.Is(err, registry.ErrServiceNotFound) {
		t.Fatalf("a refused instance left a service behind: %v", err)
	}
}
