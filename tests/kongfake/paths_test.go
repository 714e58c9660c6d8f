package kongfake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
)

// routePathCases are Kong's answers to a route with one path, recorded from
// POST /schemas/routes/validate on real Kong 3.4.2 and 3.9.3 (identical):
// the path's error, "" when accepted. They come from Kong's rules
// (typedefs.lua router_path, uri.lua normalize), not from the product.
var routePathCases = []struct{ path, err string }{
	{"/a b", ""},
	{"/a%20b", "non-normalized path, consider use '/a b' instead"},
	{"/a%2fb", "non-normalized path, consider use '/a%2Fb' instead"},
	{"/a%2Fb", ""},
	{"/a/./b", "non-normalized path, consider use '/a/b' instead"},
	{"/a/../b", "non-normalized path, consider use '/b' instead"},
	{"/a//b", "must not have empty segments"},
	{"/%7Euser", "non-normalized path, consider use '/~user' instead"},
	{"/a%zz", "invalid url-encoded value: '%zz'"},
	{"/a%", "invalid url-encoded value: '%'"},
	{"/é", ""},
	{"/a?b", ""},
	{"/a#b", ""},
	{"/a.", ""},
	{"/a/.", "non-normalized path, consider use '/a/' instead"},
	{"/..", "non-normalized path, consider use '/' instead"},
	{"/a%41", "non-normalized path, consider use '/aA' instead"},
	{"/a%2e%2e/b", "non-normalized path, consider use '/a../b' instead"},
	{"/a/%2E/b", "non-normalized path, consider use '/a/b' instead"},
	{"/a\\b", ""},
	{"/a|b", ""},
	{"/a\"b", ""},
	{"/a<b", ""},
	{"/a^b", ""},
	{"/a{b}", ""},
	{"/a`b", ""},
	{"~/a b", ""},
	{"/a%2", "invalid url-encoded value: '%2'"},
	{"/./", "non-normalized path, consider use '/' instead"},
	{"//", "must not have empty segments"},
	{"/a/", ""},
	{"/%41%42/", "non-normalized path, consider use '/AB/' instead"},
	{"/a%3ab", "non-normalized path, consider use '/a%3Ab' instead"},
	{"~/a//b", "must not have empty segments"},
	{"/a b%zz", ""},
	{"/a/b/", ""},
	{"/%2F", ""},
	{"/.well-known/x", ""},
}

func TestRoutePathsAsRealKong(t *testing.T) {
	f := New(Options{})
	for _, c := range routePathCases {
		st, b := call(t, f, "POST", "/routes", map[string]any{"paths": []string{c.path}})
		if got := pathError(st, b); got != c.err {
			t.Errorf("%q: fake says %q, Kong says %q", c.path, got, c.err)
		}
	}
}

// TestRealKongRoutePathsAsRecorded checks the recorded cases against real
// Kongs (SR_TEST_KONG_ADMIN, space-separated Admin URLs).
func TestRealKongRoutePathsAsRecorded(t *testing.T) {
	urls := strings.Fields(os.Getenv("SR_TEST_KONG_ADMIN"))
	if len(urls) == 0 {
		t.Skip("SR_TEST_KONG_ADMIN not set")
	}
	for _, u := range urls {
		for _, c := range routePathCases {
			raw, _ := json.Marshal(map[string]any{"paths": []string{c.path}})
			resp, err := http.Post(u+"/schemas/routes/validate", "application/json", bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			var b map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&b)
			resp.Body.Close()
			if got := pathError(resp.StatusCode, b); got != c.err {
				t.Errorf("%s %q: kong says %q, recorded %q", u, c.path, got, c.err)
			}
		}
	}
}

func pathError(status int, b map[string]any) string {
	if status < 300 {
		return ""
	}
	fe, _ := b["fields"].(map[string]any)
	if paths, _ := fe["paths"].([]any); len(paths) == 1 {
		if s, ok := paths[0].(string); ok {
			return s
		}
	}
	raw, _ := json.Marshal(b)
	return "unexpected answer " + string(raw)
}
