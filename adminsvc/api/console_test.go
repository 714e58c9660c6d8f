package api

import (
	"net/http"
	"strings"
	"testing"
)

// The console's assets need no key (they hold no data); everything else
// still does, including paths that only look like the console's.
func TestConsoleServedWithoutKeyDataNot(t *testing.T) {
	a := newTestAPI(t, func(c *Config) { c.APIKeys = []string{"k"} })
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/app.css"} {
		rec := a.do(http.MethodGet, p, "")
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s without key: %d (CSP %q)", p, rec.Code, rec.Header().Get("Content-Security-Policy"))
		}
	}
	if rec := a.do(http.MethodGet, "/ui", ""); rec.Code != http.StatusMovedPermanently {
		t.Errorf("GET /ui: %d", rec.Code)
	}
	for _, p := range []string{"/ui/../routes", "/ui/%2e%2e/routes", "/ui/nope"} {
		rec := a.do(http.MethodGet, p, "")
		if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "routes\"") {
			t.Errorf("GET %s without key: %d %s", p, rec.Code, rec.Body.String())
		}
	}
	if rec := a.do(http.MethodPost, "/ui/", ""); rec.Code == http.StatusOK {
		t.Errorf("POST /ui/: %d", rec.Code)
	}
	if rec := a.do(http.MethodGet, "/routes", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /routes without key: %d", rec.Code)
	}
}
