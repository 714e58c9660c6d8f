package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
)

// health is GET (and HEAD) /health: 503 only when the registry store is
// down (the registry cannot take registrations); 200 otherwise, "healthy",
// or "degraded" with the reason when Kong has been failing or refusing
// writes for longer than KongGrace (registrations are taken but do not
// reach Kong). A liveness probe must not restart adminsvc for Kong's sake.
func (srv *Server) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	n, err := srv.countRoutes(ctx)
	if err != nil {
		srv.log.Warn("health: registry store unavailable", "error", err)
		return healthReply(c, http.StatusServiceUnavailable, map[string]any{
			"status": "unhealthy", "error": "registry store unavailable",
		})
	}
	body := map[string]any{"status": "healthy", "registered_routes": n}
	if pending, err := srv.sync.Pending(ctx); err == nil {
		body["pending_changes"] = pending
	}
	st := srv.sync.Stats()
	kong := map[string]any{"leader": st.Leader}
	if st.LastError != "" {
		kong["last_error"] = st.LastError
	}
	if !st.LastApply.IsZero() {
		kong["last_apply"] = st.LastApply.UTC().Format(time.RFC3339)
	}
	status := srv.sync.Status()
	if status.Mode != "" {
		kong["mode"] = status.Mode // db or dbless, once Kong answered
	}
	if !status.FailingSince.IsZero() {
		kong["failing_since"] = status.FailingSince.UTC().Format(time.RFC3339)
	}
	if len(status.Refused) > 0 {
		kong["refused"] = status.Refused
		kong["refused_since"] = status.RefusedSince.UTC().Format(time.RFC3339)
	}
	if status.FastPath != "" {
		// A shadowed fast path is the operator's choice, not a failure.
		kong["fast_path"] = status.FastPath
		if status.FastPathShadowedBy != "" {
			kong["fast_path_shadowed_by"] = status.FastPathShadowedBy
		}
	}
	if status.PluginScope != "" {
		// An operator's own global plugin in the DB-less base is the
		// operator's choice, not a failure.
		kong["plugin_scope"] = status.PluginScope
		if status.GlobalPluginShadowedBy != "" {
			kong["global_plugin_shadowed_by"] = status.GlobalPluginShadowedBy
		}
	}
	if reason := srv.degraded(status); reason != "" {
		body["status"], body["reason"] = "degraded", reason
	}
	body["kong"] = kong
	return healthReply(c, http.StatusOK, body)
}

// healthReply answers a HEAD with the status alone.
func healthReply(c echo.Context, code int, body map[string]any) error {
	if c.Request().Method == http.MethodHead {
		return c.NoContent(code)
	}
	return c.JSON(code, body)
}

// degraded says why Kong does not reflect the registry, once that has
// lasted longer than KongGrace; "" when it does (or not for long).
func (srv *Server) degraded(st kongsync.Status) string {
	now := srv.cfg.Now()
	switch {
	case !st.FailingSince.IsZero() && now.Sub(st.FailingSince) >= srv.cfg.KongGrace:
		return fmt.Sprintf("kong unreachable or failing writes since %s: %s",
			st.FailingSince.UTC().Format(time.RFC3339), st.LastError)
	case len(st.Refused) > 0 && now.Sub(st.RefusedSince) >= srv.cfg.KongGrace:
		r := st.Refused[0]
		return fmt.Sprintf("kong refuses %d entities since %s (first: %s %s: %s)", len(st.Refused),
			st.RefusedSince.UTC().Format(time.RFC3339), r.Kind, r.Name, r.Message)
	}
	return ""
}

// countRoutes reads the route count and remembers it for /metrics.
func (srv *Server) countRoutes(ctx context.Context) (int, error) {
	n, err := srv.store.CountRoutes(ctx)
	if err == nil {
		srv.lastRoutes.Store(int64(n))
	}
	return n, err
}

// gauges reads what /metrics reports at scrape time. While the store is
// down the route count is the last one read (a dashboard must not show
// every route gone), absent if none was.
func (srv *Server) gauges(ctx context.Context) gauges {
	g := gauges{routes: srv.lastRoutes.Load()}
	if n, err := srv.countRoutes(ctx); err == nil {
		g.routes, g.up = int64(n), true
	}
	if p, err := srv.sync.Pending(ctx); err == nil {
		g.pending = p
	}
	g.leader = srv.sync.Stats().Leader
	g.streams = srv.hub.streams()
	return g
}
