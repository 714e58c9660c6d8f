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

// The hosts of issue 13 defect 2 and their neighbours, as real Kong 3.4.2 and
// 3.9.3 judge them (targets and upstream host_header; checked against both
// with kong-start.sh): Kong types a host made of digits and dots as IPv4
// before validating it, so none of these is "a hostname".
func TestValidateHostKongRules(t *testing.T) {
	refused := []string{
		"2852039166", "999.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.", "256.0.0.1", "1..2.3", "1234.1.1.1", ".1.2.3",
		"::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:7:8:9", "12345::1", "1:2", "g::1", "fe80::1%eth0",
		"a_b-.example", "a..b", "", "a b", "a/b", "a:b", "*.x", "a\r\nb",
		// Stricter than Kong (it accepts and normalizes these): leading
		// zeros read as octal by some resolvers, a leading '-', a trailing dot.
		"010.1.1.1", "-a.example", "example.com.",
	}
	for _, h := range refused {
		if err := registry.ValidateHost(h); err == nil {
			t.Errorf("ValidateHost(%q) accepted", h)
		}
	}
	accepted := []string{
		"1.2.3.4", "255.255.255.255", "0.0.0.0", "::1", "::", "2001:db8::1", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7",
		"FE80::AB", "example.com", "a1", "1a", "1.2.3.x", "my_service.docker", "x-1.y_2",
	}
	for _, h := range accepted {
		if err := registry.ValidateHost(h); err != nil {
			t.Errorf("ValidateHost(%q): %v", h, err)
		}
	}
	for _, a := range []string{"999.1.1.1:80", "2852039166:80", "1.2.3:80", "[::ffff:1.2.3.4]:80"} {
		if _, _, err := registry.ValidateAddress(a); err == nil {
			t.Errorf("ValidateAddress(%q) accepted", a)
		}
	}
}

// The store is the last line: whoever writes around the API, a backend or
// address Kong would refuse is never stored (it would retry forever in DB
// mode and vanish silently in DB-less mode).
func TestStoreRefusesHostsKongRefuses(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := registry.NewStore(srv.Client(), registry.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range []string{"http://2852039166/", "http://999.1.1.1/", "http://1.2.3/", "http://[::ffff:1.2.3.4]:80/"} {
		_, _, err := s.RegisterRoute(ctx, registry.Route{Host: "h.test", Path: "/p", Backend: b})
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("backend %s: %v, want ErrInvalid", b, err)
		}
	}
	if _, err := s.PutInstance(ctx, "orders", registry.Instance{ID: "x", Address: "999.1.1.1:80", Weight: 1}); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("address 999.1.1.1:80: %v, want ErrInvalid", err)
	}
	if routes, err := s.ListRoutes(ctx); err != nil || len(routes) != 0 {
		t.Fatalf("routes after refusals: %v %v", routes, err)
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
