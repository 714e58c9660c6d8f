package main

import (
	"errors"
	"testing"
)

func TestValidPathRefusesWhatKongRefuses(t *testing.T) {
	for p, want := range map[string]string{
		"/a//b":   "path: non-normalized path, consider use '/a/b' instead",
		"/a/./b":  "path: non-normalized path, consider use '/a/b' instead",
		"/a/../b": "path: non-normalized path, consider use '/b' instead",
		"/%41":    "path: non-normalized path, consider use '/A' instead",
		"/%2f":    "path: non-normalized path, consider use '/%2F' instead",
	} {
		err := validPath(p)
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != 400 || ae.msg != want {
			t.Errorf("validPath(%q) = %v, want 400 %q", p, err, want)
		}
	}
	for _, p := range []string{"/", "/api/v2", "/a/b/", "/%2F", "/.well-known/acme"} {
		if err := validPath(p); err != nil {
			t.Errorf("validPath(%q): %v", p, err)
		}
	}
}
