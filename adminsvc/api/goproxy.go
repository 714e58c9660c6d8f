package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/routeopts"
)

type registerReq struct {
	Host, Path, Backend string
	Options             json.RawMessage
}

// parseRegister validates a /register body (also used by import).
func parseRegister(m map[string]json.RawMessage) (registerReq, routeopts.Options, error) {
	var r registerReq
	var err error
	if r.Host, err = stringField(m, "host", true); err != nil {
		return r, routeopts.Options{}, err
	}
	if r.Path, err = stringField(m, "path", true); err != nil {
		return r, routeopts.Options{}, err
	}
	if r.Backend, err = stringField(m, "backend", true); err != nil {
		return r, routeopts.Options{}, err
	}
	// DNS names are case-insensitive; one spelling keeps names and
	// idempotency stable.
	r.Host = strings.ToLower(r.Host)
	if err := validHost(r.Host); err != nil {
		return r, routeopts.Options{}, err
	}
	if err := validPath(r.Path); err != nil {
		return r, routeopts.Options{}, err
	}
	if err := validBackend(r.Backend); err != nil {
		return r, routeopts.Options{}, err
	}
	opts, canon, err := routeopts.Parse(m["options"])
	if err != nil {
		return r, routeopts.Options{}, badRequest("%s", err.Error())
	}
	r.Options = canon
	return r, opts, nil
}

func (srv *Server) register(c echo.Context) error {
	m, err := readObject(c)
	if err != nil {
		return err
	}
	req, opts, err := parseRegister(m)
	if err != nil {
		return err
	}
	if err := srv.denyBackend(req.Backend); err != nil {
		return err
	}
	for _, name := range opts.Unknown {
		if _, seen := srv.unknown.LoadOrStore(name, true); !seen {
			srv.log.Warn("unknown route option kept as is", "option", name)
		}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	stored, created, err := srv.store.RegisterRoute(ctx, registry.Route{Host: req.Host, Path: req.Path, Backend: req.Backend, Options: req.Options})
	switch {
	case errors.Is(err, registry.ErrRouteExists):
		srv.m.conflicts.Add(1)
		return httpError(http.StatusConflict, "route already exists")
	case errors.Is(err, registry.ErrInvalid):
		return invalidInput(err)
	case err != nil:
		return err
	}
	if created {
		srv.m.registrations.Add(1)
		srv.log.Info("audit", "action", "register", "host", stored.Host, "path", stored.Path,
			"backend", stored.Backend, "service", registry.ServiceName(stored.Host, stored.Path), "client", clientID(c))
		srv.sync.Trigger()
	}
	return c.JSON(http.StatusOK, struct {
		Status  string `json:"status"`
		Host    string `json:"host"`
		Path    string `json:"path"`
		Backend string `json:"backend"`
	}{"registered", stored.Host, stored.Path, stored.Backend})
}

func (srv *Server) deregister(c echo.Context) error {
	m, err := readObject(c)
	if err != nil {
		return err
	}
	host, err := stringField(m, "host", true)
	if err != nil {
		return err
	}
	path, err := stringField(m, "path", true)
	if err != nil {
		return err
	}
	host = strings.ToLower(host)
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	r, err := srv.store.DeregisterRoute(ctx, host, path)
	switch {
	case errors.Is(err, registry.ErrRouteNotFound):
		return httpError(http.StatusNotFound, "route not found")
	case err != nil:
		return err
	}
	srv.m.deregistrations.Add(1)
	srv.log.Info("audit", "action", "deregister", "host", r.Host, "path", r.Path, "backend", r.Backend, "client", clientID(c))
	srv.sync.Trigger()
	return c.JSON(http.StatusOK, struct {
		Status string `json:"status"`
		Host   string `json:"host"`
		Path   string `json:"path"`
	}{"deregistered", r.Host, r.Path})
}

// routeJSON is a GET /routes row: the go-proxy shape plus options (an
// addition, so a dump can be re-imported with everything).
type routeJSON struct {
	Host         string          `json:"host"`
	Path         string          `json:"path"`
	Backend      string          `json:"backend"`
	Options      json.RawMessage `json:"options,omitempty"`
	RegisteredAt string          `json:"registered_at"`
}

func toRouteJSON(rs []registry.Route) []routeJSON {
	out := make([]routeJSON, len(rs))
	for i, r := range rs {
		out[i] = routeJSON{Host: r.Host, Path: r.Path, Backend: r.Backend, Options: r.Options,
			RegisteredAt: r.RegisteredAt.UTC().Format(time.RFC3339)}
	}
	return out
}

// listRoutes is GET /routes: every route, streamed (the go-proxy default),
// or with ?limit= one page and the cursor of the next.
func (srv *Server) listRoutes(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	if p.limit == 0 {
		return streamList(srv, c, "routes", func(ctx context.Context, after string) ([]routeJSON, string, error) {
			rs, next, err := srv.store.ListRoutesPage(ctx, after, streamPage)
			return toRouteJSON(rs), next, err
		})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	rs, next, err := srv.store.ListRoutesPage(ctx, p.after, p.limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Routes     []routeJSON `json:"routes"`
		Total      int         `json:"total"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}{toRouteJSON(rs), len(rs), encodeCursor(next)})
}
