package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
)

// TestHealthDegradedWhileKongFails is issue 13's defect 8: Kong failing or
// refusing writes for longer than the grace makes /health "degraded" with
// the reason, still 200; shorter is "healthy"; only the store makes 503.
func TestHealthDegradedWhileKongFails(t *testing.T) {
	now := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	a := newTestAPI(t, func(c *Config) {
		c.KongGrace = time.Minute
		c.Now = func() time.Time { return now }
	})
	status := func() (int, map[string]any) {
		rec := a.do(http.MethodGet, "/health", "")
		return rec.Code, decode(t, rec)
	}
	a.sync.status = kongsync.Status{LastError: "dial tcp 127.0.0.1:8001: connection refused", FailingSince: now.Add(-30 * time.Second)}
	if code, body := status(); code != 200 || body["status"] != "healthy" || body["reason"] != nil {
		t.Fatalf("kong failing for 30 s (grace 1 min): %d %v", code, body)
	}
	a.sync.status.FailingSince = now.Add(-5 * time.Minute)
	code, body := status()
	reason, _ := body["reason"].(string)
	if code != 200 || body["status"] != "degraded" || !strings.Contains(reason, "connection refused") ||
		!strings.Contains(reason, "since 2026-12-07T03:55:00Z") {
		t.Fatalf("kong failing for 5 min: %d %v", code, body)
	}
	a.sync.status = kongsync.Status{LastSuccess: now, RefusedSince: now.Add(-2 * time.Minute),
		Refused: []kongsync.Refusal{{Kind: "targets", Name: "999.1.1.1:80", Message: "Invalid target"}}}
	code, body = status()
	reason, _ = body["reason"].(string)
	if code != 200 || body["status"] != "degraded" || !strings.Contains(reason, "kong refuses 1 entities") || !strings.Contains(reason, "Invalid target") {
		t.Fatalf("kong refusing: %d %v", code, body)
	}
	if refused, _ := body["kong"].(map[string]any)["refused"].([]any); len(refused) != 1 {
		t.Fatalf("the refused entity is not named: %v", body["kong"])
	}
	a.sync.status = kongsync.Status{LastSuccess: now, Mode: "dbless"}
	if code, body := status(); code != 200 || body["status"] != "healthy" || body["kong"].(map[string]any)["mode"] != "dbless" {
		t.Fatalf("kong back (the console's overview shows the mode): %d %v", code, body)
	}
	// HEAD /health: load balancers probe with HEAD (was 405).
	if rec := a.do(http.MethodHead, "/health", ""); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("HEAD /health: %d %q", rec.Code, rec.Body.String())
	}
}

// TestMetricsKeepRouteCountWhileStoreDown: sr_registered_routes is the
// last count read while Redis is down, never a false 0 (defect 8).
func TestMetricsKeepRouteCountWhileStoreDown(t *testing.T) {
	a := newTestAPI(t, nil)
	for _, b := range []string{`{"host":"a.example","path":"/","backend":"http://b:1"}`, `{"host":"b.example","path":"/","backend":"http://b:1"}`} {
		if rec := a.do(http.MethodPost, "/register", b); rec.Code != 200 {
			t.Fatal(rec.Body.String())
		}
	}
	if body := a.do(http.MethodGet, "/metrics", "").Body.String(); !strings.Contains(body, "\nsr_registered_routes 2\n") {
		t.Fatalf("metrics with the store up:\n%s", body)
	}
	a.redis.Stop()
	body := a.do(http.MethodGet, "/metrics", "").Body.String()
	if !strings.Contains(body, "\nsr_registered_routes 2\n") || !strings.Contains(body, "\nsr_store_up 0\n") {
		t.Fatalf("metrics with the store down:\n%s", body)
	}
}

// TestHealthShowsShadowedFastPath: an operator's route catching "/" without
// hosts keeps the fast path's catch-all out of Kong; /health names it and
// stays healthy (the operator's config wins, nothing is failing).
func TestHealthShowsShadowedFastPath(t *testing.T) {
	a := newTestAPI(t, nil)
	a.sync.status = kongsync.Status{Mode: "db", FastPath: kongsync.FastPathShadowed, FastPathShadowedBy: "operator-root"}
	rec := a.do(http.MethodGet, "/health", "")
	body := decode(t, rec)
	kong, _ := body["kong"].(map[string]any)
	if rec.Code != 200 || body["status"] != "healthy" || kong["fast_path"] != "shadowed" || kong["fast_path_shadowed_by"] != "operator-root" {
		t.Fatalf("shadowed fast path: %d %v", rec.Code, body)
	}
	a.sync.status = kongsync.Status{Mode: "db", FastPath: kongsync.FastPathOn}
	body = decode(t, a.do(http.MethodGet, "/health", ""))
	if kong, _ = body["kong"].(map[string]any); kong["fast_path"] != "on" || kong["fast_path_shadowed_by"] != nil {
		t.Fatalf("fast path on: %v", body)
	}
}

// TestHealthShowsPluginScope: /health says where the service-registry
// plugin is, and names an operator's own global plugin that took the place
// of ours in a DB-less base, staying healthy (the operator's choice).
func TestHealthShowsPluginScope(t *testing.T) {
	a := newTestAPI(t, nil)
	body := decode(t, a.do(http.MethodGet, "/health", ""))
	if kong, _ := body["kong"].(map[string]any); kong["plugin_scope"] != nil {
		t.Fatalf("plugin scope before the first apply: %v", body)
	}
	a.sync.status = kongsync.Status{Mode: "db", PluginScope: "global"}
	body = decode(t, a.do(http.MethodGet, "/health", ""))
	if kong, _ := body["kong"].(map[string]any); kong["plugin_scope"] != "global" || kong["global_plugin_shadowed_by"] != nil {
		t.Fatalf("global scope: %v", body)
	}
	a.sync.status = kongsync.Status{Mode: "dbless", PluginScope: "global", GlobalPluginShadowedBy: "operator-sr"}
	rec := a.do(http.MethodGet, "/health", "")
	body = decode(t, rec)
	if kong, _ := body["kong"].(map[string]any); rec.Code != 200 || body["status"] != "healthy" || kong["global_plugin_shadowed_by"] != "operator-sr" {
		t.Fatalf("shadowed global plugin: %d %v", rec.Code, body)
	}
}
