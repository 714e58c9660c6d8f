package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestServesPageAndAssets(t *testing.T) {
	for path, ctype := range map[string]string{
		"/ui/":            "text/html; charset=utf-8",
		"/ui/index.html":  "text/html; charset=utf-8",
		"/ui/app.js":      "text/javascript; charset=utf-8",
		"/ui/app.css":     "text/css; charset=utf-8",
		"/ui/favicon.svg": "image/svg+xml",
	} {
		r := serve(t, http.MethodGet, path)
		body, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, r.StatusCode, len(body))
			continue
		}
		if got := r.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		if !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET %s: no restrictive CSP: %q", path, r.Header.Get("Content-Security-Policy"))
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
	}
	if r := serve(t, http.MethodHead, "/ui/"); r.StatusCode != http.StatusOK {
		t.Errorf("HEAD /ui/: %d", r.StatusCode)
	}
}

func TestRedirectsAndRefusals(t *testing.T) {
	r := serve(t, http.MethodGet, "/ui")
	if r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	for _, p := range []string{"/ui/nope.js", "/ui/static/app.js", "/ui/../ui.go", "/other", "/ui/.", "/ui//"} {
		if r := serve(t, http.MethodGet, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	r = serve(t, http.MethodPost, "/ui/")
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /ui/: %d Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
}

// The console must work offline and under its own CSP: every asset is
// referenced by a relative path, nothing is loaded from another origin,
// there is no inline script or style, and API data never goes in as markup.
func TestAssetsAreSelfContained(t *testing.T) {
	sub, _ := fs.Sub(static, "static")
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["'](https?:)?//|@import|url\(\s*["']?(https?:)?//|fetch\(\s*["']https?:`)
	inline := regexp.MustCompile(`(?is)<script[^>]*>\s*[^<\s]|<style|\sstyle\s*=|\son[a-z]+\s*=`)
	markup := regexp.MustCompile(`\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	n := 0
	err := fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, _ := fs.ReadFile(sub, p)
		s := string(b)
		if m := external.FindString(s); m != "" {
			t.Errorf("%s loads from another origin: %q", p, m)
		}
		if strings.HasSuffix(p, ".html") {
			if m := inline.FindString(s); m != "" {
				t.Errorf("%s has inline script/style/handler (blocked by the CSP): %q", p, m)
			}
		}
		if strings.HasSuffix(p, ".js") {
			if m := markup.FindString(s); m != "" {
				t.Errorf("%s builds markup from strings: %q", p, m)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}

// Every module the page imports is served.
func TestImportsResolve(t *testing.T) {
	sub, _ := fs.Sub(static, "static")
	imp := regexp.MustCompile(`from\s+'\./([^']+)'`)
	files, _ := fs.Glob(sub, "*.js")
	for _, f := range files {
		b, _ := fs.ReadFile(sub, f)
		for _, m := range imp.FindAllStringSubmatch(string(b), -1) {
			if r := serve(t, http.MethodGet, "/ui/"+m[1]); r.StatusCode != http.StatusOK {
				t.Errorf("%s imports %s: %d", f, m[1], r.StatusCode)
			}
		}
	}
}
