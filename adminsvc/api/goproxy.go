package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
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

// registerFields are the /register body's fields. Any other is refused
// with a 400 naming it: a client sending "ttl" believes it took effect, and
// the go-proxy clients (seed 004: curl, Python, Node, Go, Java) send only
// these four.
var registerFields = map[string]bool{"host": true, "path": true, "backend": true, "options": true}

// Unknown options are kept verbatim (forward compatibility), within bounds.
const (
	maxUnknownOptions      = 32
	maxUnknownOptionsBytes = 4096
)

// unknownFields refuses the first (by name) field of m not in allowed.
func unknownFields(m map[string]json.RawMessage, allowed map[string]bool) error {
	var bad []string
	for k := range m {
		if !allowed[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return badRequest("unknown field %q", bad[0])
}

// parseRegister validates a /register body (also used by import).
func parseRegister(m map[string]json.RawMessage) (registerReq, routeopts.Options, error) {
	var r registerReq
	if err := unknownFields(m, registerFields); err != nil {
		return r, routeopts.Options{}, err
	}
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
	r.Backend = canonicalBackend(r.Backend)
	opts, canon, err := routeopts.Parse(m["options"])
	if err != nil {
		return r, routeopts.Options{}, badRequest("%s", err.Error())
	}
	if err := boundUnknown(canon, opts.Unknown); err != nil {
		return r, routeopts.Options{}, err
	}
	r.Options = canon
	return r, opts, nil
}

// canonicalBackend is the one spelling of a valid backend URL: scheme and
// host lowercase, a lone "/" path dropped ("http://o:1/" is "http://o:1").
func canonicalBackend(b string) string {
	u, err := url.Parse(b)
	if err != nil {
		return b
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if u.Path == "/" && u.RawPath == "" {
		u.Path = ""
	}
	return u.String()
}

// boundUnknown refuses unknown options past maxUnknownOptions names or
// maxUnknownOptionsBytes of JSON: they are stored verbatim and returned by
// every GET /routes, so an open API must not take a megabyte of them.
func boundUnknown(canon json.RawMessage, unknown []string) error {
	if len(unknown) == 0 {
		return nil
	}
	if len(unknown) > maxUnknownOptions {
		return badRequest("options: %d unknown options (at most %d)", len(unknown), maxUnknownOptions)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(canon, &all); err != nil {
		return badRequest("options: %v", err)
	}
	size := 0
	for _, k := range unknown {
		size += len(k) + len(all[k])
	}
	if size > maxUnknownOptionsBytes {
		return badRequest("options: unknown options take %d bytes (at most %d)", size, maxUnknownOptionsBytes)
	}
	return nil
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
		existing, same, gerr := srv.sameAsRegistered(ctx, req)
		if errors.Is(gerr, registry.ErrRouteNotFound) {
			srv.m.conflicts.Add(1) // deregistered since: the conflict stands
			return httpError(http.StatusConflict, "route already exists")
		}
		if gerr != nil {
			return gerr
		}
		if same {
			// Another spelling of the same registration ("60s" for "1m", a
			// trailing "/"): idempotent, answered with what is stored.
			stored = existing
			break
		}
		srv.m.conflicts.Add(1)
		return &echo.HTTPError{Code: http.StatusConflict, Message: withBody{msg: "route already exists",
			extra: map[string]any{"registered": toRouteJSON([]registry.Route{existing})[0]}}}
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

// sameAsRegistered reads the route registered at req's host and path and
// says whether it is req in canonical form (backend and options compared
// as parseRegister would write them today, so routes stored before that
// compare equal too).
func (srv *Server) sameAsRegistered(ctx context.Context, req registerReq) (registry.Route, bool, error) {
	existing, err := srv.store.GetRoute(ctx, req.Host, req.Path)
	if err != nil {
		return registry.Route{}, false, err
	}
	same := canonicalBackend(existing.Backend) == req.Backend &&
		bytes.Equal(routeopts.Canonical(existing.Options), req.Options)
	return existing, same, nil
}

// deregisterFields: host and path; backend and options are tolerated (a
// client may send its /register body) and ignored; anything else is a 400.
var deregisterFields = map[string]bool{"host": true, "path": true, "backend": true, "options": true}

func (srv *Server) deregister(c echo.Context) error {
	m, err := readObject(c)
	if err != nil {
		return err
	}
	if err := unknownFields(m, deregisterFields); err != nil {
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
