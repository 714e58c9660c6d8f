package harness

import "testing"

// TestKongURI: get_path and the upstream URI as a real Kong 3.4.2 and 3.9.3
// gave them (fastpath-facts (c), tests/KONG-NOTES.md).
func TestKongURI(t *testing.T) {
	for _, c := range []struct{ raw, path, upstream string }{
		{"/a/%41/../b", "/a/b", "/a/b"},
		{"/x/%2F/y", "/x/%2F/y", "/x/%2F/y"},
		{"//double//slash", "/double/slash", "/double/slash"},
		{"/a/./b/", "/a/b/", "/a/b/"},
		{"/%7euser", "/~user", "/~user"},
		{"/caf%C3%A9", "/caf\xc3\xa9", "/caf%C3%A9"},
		{"/sp%20ace", "/sp ace", "/sp%20ace"},
		{"/q%3fx", "/q%3Fx", "/q%3Fx"},
		{"/x/%2e%2e/y", "/y", "/y"},
		{"/", "/", "/"},
	} {
		p := kongNormalize(c.raw)
		if p != c.path || kongEscape(p) != c.upstream {
			t.Errorf("%s: path %q upstream %q, want %q %q", c.raw, p, kongEscape(p), c.path, c.upstream)
		}
	}
}
