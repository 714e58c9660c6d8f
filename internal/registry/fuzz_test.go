package registry_test

import (
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// ServiceName is deterministic, Kong-name-safe, bounded, and its two forms
// never meet: readable names have no '~', hashed names end in "~<12 hex>".
func FuzzServiceName(f *testing.F) {
	for _, s := range [][2]string{{"api.example.com", "/v1"}, {"*.a.com", "/"}, {"A", "x"}, {"", ""}, {"a_b", "/~"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		n := registry.ServiceName(host, path)
		if n != registry.ServiceName(host, path) || !strings.HasPrefix(n, "sr-") || len(n) > 100 {
			t.Fatalf("%q", n)
		}
		for _, r := range n {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_~", r)) {
				t.Fatalf("%q has %q", n, r)
			}
		}
		if i := strings.IndexByte(n, '~'); i >= 0 && i != len(n)-13 {
			t.Fatalf("hash suffix misplaced in %q", n)
		}
		if !strings.Contains(n, "~") {
			// Readable: decodes back to the input.
			rest := strings.TrimPrefix(n, "sr-")
			h, p, _ := strings.Cut(rest, "_")
			if h != host || "/"+strings.ReplaceAll(p, "_", "/") != path {
				t.Fatalf("readable name %q does not decode to %q %q", n, host, path)
			}
		}
	})
}
