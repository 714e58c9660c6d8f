package translator

import "testing"

// Expected values worked out by hand from kong/tools/uri.lua (3.9.3).
func TestNormalizePathLikeKong(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"/":              "/",
		"/a/b":           "/a/b",
		"/a//b":          "/a/b",
		"//a":            "/a",
		"/a/./b":         "/a/b",
		"/a/../b":        "/b",
		"/../a":          "/a",
		"/a/..":          "/",
		"/a/.":           "/a/",
		"/a/b/":          "/a/b/",
		"/.well-known":   "/.well-known",
		"/a..b/..c":      "/a..b/..c",
		"/%41":           "/A",
		"/%7e":           "/~",
		"/%2f":           "/%2F",
		"/%2F":           "/%2F",
		"/%25":           "/%25",
		"/%2541":         "/%2541",
		"/%2e%2e/a":      "/a",
		"/a%2fb":         "/a%2Fb",
		"/%c3%a9":        "/\xc3\xa9",
		"/a%":            "/a%",
		"/a%4":           "/a%4",
		"/v1/users.json": "/v1/users.json",
	} {
		if got := NormalizePath(in); got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
	}
	for _, p := range []string{"/a//b", "/a/./b", "/a/../b", "/%41", "/%2f"} {
		if CheckPath(p) == "" {
			t.Errorf("%s accepted", p)
		}
	}
	// Real Kong 3.4.2 and 3.9.3 (POST /schemas/routes/validate): router_path's
	// match_none "//" runs before the normal-form check, for regex paths too.
	for p, want := range map[string]string{
		"/a//b":  "must not have empty segments",
		"~/a//b": "must not have empty segments",
		"/a/./b": "non-normalized path, consider use '/a/b' instead",
	} {
		if got := CheckPath(p); got != want {
			t.Errorf("CheckPath(%q) = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"/", "/a/b/", "/%2F", "/.well-known/x", "~/a/b"} {
		if msg := CheckPath(p); msg != "" {
			t.Errorf("%s refused: %s", p, msg)
		}
	}
}
