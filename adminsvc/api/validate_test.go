package api

import (
	"errors"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestValidPathRefusesWhatKongRefuses(t *testing.T) {
	for p, want := range map[string]string{
		"/a//b":   "path: must not have empty segments",
		"/a/./b":  "path: non-normalized path, consider use '/a/b' instead",
		"/a/../b": "path: non-normalized path, consider use '/b' instead",
		"/%41":    "path: non-normalized path, consider use '/A' instead",
		"/%2f":    "path: non-normalized path, consider use '/%2F' instead",
	} {
		err := validPath(p)
		var he *echo.HTTPError
		if !errors.As(err, &he) || he.Code != 400 || he.Message != message(want) {
			t.Errorf("validPath(%q) = %v, want 400 %q", p, err, want)
		}
	}
	for _, p := range []string{"/", "/api/v2", "/a/b/", "/%2F", "/.well-known/acme"} {
		if err := validPath(p); err != nil {
			t.Errorf("validPath(%q): %v", p, err)
		}
	}
}

// TestValidBackendCompilesNothing: validBackend compiled a regexp per host
// label on every request (issue 13, defect 10); a compile costs dozens of
// allocations, the check itself a handful.
func TestValidBackendCompilesNothing(t *testing.T) {
	const backend = "http://api.internal.example.com:8080/base"
	if err := validBackend(backend); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = validBackend(backend) }); n > 12 {
		t.Fatalf("validBackend allocates %.0f times per call: compiling per request?", n)
	}
}
