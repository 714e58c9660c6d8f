package routetable_test

import (
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/routetable"
)

// TestMatchLikeKong: Kong's priority for routes with one host and one
// prefix path (kong/router/compat.lua get_priority): an exact host ranks
// above every wildcard host whatever the paths, then the longest prefix;
// prefixes are plain string prefixes, not path segments.
func TestMatchLikeKong(t *testing.T) {
	e := newEnv(t)
	for _, r := range [][2]string{
		{"a.example.com", "/"},
		{"a.example.com", "/api"},
		{"a.example.com", "/api/v2"},
		{"*.example.com", "/api/v2/deep"},
		{"*.example.com", "/w"},
		{"*.b.example.com", "/w"},
		{"*.example.com", "/wide"},
	} {
		e.register(t, r[0], r[1], "http://backend:80")
	}
	tb := newTable(t, e.store, routetable.Options{PollInterval: time.Hour})
	wait(t, tb)
	cases := []struct{ host, path, wantHost, wantPath string }{
		{"a.example.com", "/", "a.example.com", "/"},
		{"a.example.com", "/apix", "a.example.com", "/api"}, // plain prefix, not segments
		{"a.example.com", "/api/v2/x", "a.example.com", "/api/v2"},
		{"a.example.com", "/api/v2/deep", "a.example.com", "/api/v2"}, // exact host beats a longer wildcard path
		{"x.example.com", "/api/v2/deep/1", "*.example.com", "/api/v2/deep"},
		{"x.example.com", "/widest", "*.example.com", "/wide"},
		{"x.b.example.com", "/w", "*.b.example.com", "/w"}, // equal lengths: the more specific suffix
		{"x.b.example.com", "/wide", "*.example.com", "/wide"},
		{"example.com", "/w", "", ""},                  // *.example.com needs a label before
		{"A.example.com", "/api", "*.example.com", ""}, // case kept: Kong compares as sent
		{"x.example.com", "/nothing", "", ""},
		{"other.test", "/", "", ""},
	}
	for _, c := range cases {
		en := tb.Match(c.host, c.path)
		switch {
		case c.wantHost == "" && en != nil:
			t.Errorf("%s%s: matched %s%s, want none", c.host, c.path, en.Route.Host, en.Route.Path)
		case c.wantHost == "*.example.com" && c.wantPath == "":
			if en != nil && en.Route.Host == "a.example.com" {
				t.Errorf("%s%s: matched the exact host a.example.com", c.host, c.path)
			}
		case c.wantHost != "" && (en == nil || en.Route.Host != c.wantHost || en.Route.Path != c.wantPath):
			t.Errorf("%s%s: matched %+v, want %s%s", c.host, c.path, en, c.wantHost, c.wantPath)
		}
	}
}

// TestRequestHost: Kong's split_port (traditional.lua) cuts a port of
// digits only, and a bare trailing ':'; the case stays.
func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{
		"a.example.com":       "a.example.com",
		"a.example.com:8000":  "a.example.com",
		"a.example.com:":      "a.example.com",
		"a.example.com:0x1f":  "a.example.com:0x1f",
		"a.example.com:x":     "a.example.com:x",
		"a.example.com:80:81": "a.example.com:80:81",
		"a.example.com: 80":   "a.example.com: 80",
		"[::1]:8000":          "[::1]:8000",
		"A.Example.com:80":    "A.Example.com",
		"":                    "",
	} {
		if got := routetable.RequestHost(in); got != want {
			t.Errorf("RequestHost(%q) = %q, want %q", in, got, want)
		}
	}
}
