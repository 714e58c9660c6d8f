package client_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// The client cannot import internal/registry (services outside this module
// must be able to import the client), so it carries a copy of the naming
// rule; this test fails the moment the two differ.
func TestRouteServiceMatchesTheRegistry(t *testing.T) {
	cases := [][2]string{
		{"api.example.com", "/v2"}, {"api.example.com", "/"}, {"api.example.com", "/a/b/c"},
		{"*.example.com", "/x"}, {"API.example.com", "/x"}, {"a.example.com", "/under_score"},
		{"a.example.com", "/tilde~"}, {"a.example.com", "/" + strings.Repeat("long/", 40)},
		{"", "/x"}, {"a.example.com", "no-slash"}, {"xn--bcher-kva.example", "/ünï"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcXYZ019.-_/~*% "
	for i := 0; i < 2000; i++ {
		var h, p strings.Builder
		for j := rng.IntN(30); j > 0; j-- {
			h.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		p.WriteByte('/')
		for j := rng.IntN(120); j > 0; j-- {
			p.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, [2]string{h.String(), p.String()})
	}
	for _, c := range cases {
		if got, want := client.RouteService(c[0], c[1]), registry.ServiceName(c[0], c[1]); got != want {
			t.Fatalf("RouteService(%q, %q) = %q, registry says %q", c[0], c[1], got, want)
		}
	}
}
