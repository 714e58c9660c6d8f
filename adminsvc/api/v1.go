package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/breaker"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

//go:embed openapi.json
var openapiDoc []byte

func (srv *Server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", openapiDoc)
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, registry.ErrServiceNotFound):
		return httpError(http.StatusNotFound, "service not found")
	case errors.Is(err, registry.ErrServiceOfRoute):
		return httpError(http.StatusConflict, "service belongs to a registered route: remove the route (POST /deregister)")
	case errors.Is(err, registry.ErrInstanceNotFound):
		return httpError(http.StatusNotFound, "instance not found")
	case errors.Is(err, registry.ErrInvalid):
		return invalidInput(err)
	}
	return err
}

// invalidInput turns a store ErrInvalid into a 400 naming the field; the
// store's wrapping ("registry: ...") is internal and never shown.
func invalidInput(err error) error {
	var ie *registry.InputError
	if errors.As(err, &ie) {
		return badRequest("%s", ie.Error())
	}
	return badRequest("invalid input")
}

// checkName validates the :name path parameter before any handler runs, so
// a bad name is a 400 naming the field, never a store error.
func checkName(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		for i, p := range c.ParamNames() {
			if p != "name" {
				continue
			}
			if err := registry.CheckServiceName(c.ParamValues()[i]); err != nil {
				return badRequest("name: %v", err)
			}
		}
		return next(c)
	}
}

// listServices is GET /v1/services: every service carrying all of ?tags=,
// streamed, or with ?limit= one page and the cursor of the next.
func (srv *Server) listServices(c echo.Context) error {
	var tags []string
	for _, t := range strings.Split(c.QueryParam("tags"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	if p.limit == 0 {
		return streamList(srv, c, "services", func(ctx context.Context, after string) ([]registry.Service, string, error) {
			return srv.store.ListServicesPage(ctx, tags, after, streamPage)
		})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	svcs, next, err := srv.store.ListServicesPage(ctx, tags, p.after, p.limit)
	if err != nil {
		return storeErr(err)
	}
	if svcs == nil {
		svcs = []registry.Service{}
	}
	return c.JSON(http.StatusOK, struct {
		Services   []registry.Service `json:"services"`
		Total      int                `json:"total"`
		NextCursor string             `json:"next_cursor,omitempty"`
	}{svcs, len(svcs), encodeCursor(next)})
}

func (srv *Server) getService(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	s, err := srv.store.GetService(ctx, c.Param("name"))
	if err != nil {
		return storeErr(err)
	}
	return c.JSON(http.StatusOK, s)
}

// deleteService is DELETE /v1/services/{name}: a service made through
// /v1 (a typo'd name stayed forever) goes with its instances, tags and
// maintenance; a registered route's service goes with the route.
func (srv *Server) deleteService(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	if err := srv.store.DeleteService(ctx, c.Param("name")); err != nil {
		return storeErr(err)
	}
	srv.log.Info("audit", "action", "delete_service", "service", c.Param("name"), "client", clientID(c))
	srv.sync.Trigger()
	return c.JSON(http.StatusOK, map[string]string{"status": "deleted", "service": c.Param("name")})
}

func (srv *Server) setTags(c echo.Context) error {
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	if err := srv.store.SetServiceTags(ctx, c.Param("name"), body.Tags); err != nil {
		return storeErr(err)
	}
	srv.log.Info("audit", "action", "set_tags", "service", c.Param("name"), "tags", body.Tags, "client", clientID(c))
	return c.JSON(http.StatusOK, map[string]any{"status": "updated", "service": c.Param("name"), "tags": body.Tags})
}

type instanceReq struct {
	Address  string            `json:"address"`
	Scheme   string            `json:"scheme"`
	Weight   *int              `json:"weight"`
	TTL      int               `json:"ttl_s"`
	Tags     []string          `json:"tags"`
	Metadata map[string]string `json:"metadata"`
}

func (srv *Server) putInstance(c echo.Context) error {
	var req instanceReq
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if err := validAddress(req.Address); err != nil {
		return err
	}
	if err := srv.denyAddress(req.Address); err != nil {
		return err
	}
	weight := 100
	if req.Weight != nil {
		weight = *req.Weight
	}
	if weight < 0 || weight > registry.MaxWeight {
		return badRequest("weight: must be between 0 and %d", registry.MaxWeight)
	}
	if req.TTL < 0 {
		return badRequest("ttl_s: must not be negative")
	}
	switch req.Scheme {
	case "", "http", "https":
	default:
		return badRequest("scheme: expected http or https")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	in, err := srv.store.PutInstance(ctx, c.Param("name"), registry.Instance{
		ID: c.Param("id"), Address: req.Address, Scheme: req.Scheme, Weight: weight,
		TTLSeconds: req.TTL, Tags: req.Tags, Metadata: req.Metadata,
	})
	if err != nil {
		return storeErr(err)
	}
	srv.log.Info("audit", "action", "put_instance", "service", c.Param("name"), "instance", in.ID,
		"address", in.Address, "weight", in.Weight, "ttl_s", in.TTLSeconds, "client", clientID(c))
	srv.sync.Trigger()
	return c.JSON(http.StatusOK, in)
}

func (srv *Server) patchInstance(c echo.Context) error {
	var req struct {
		Weight *int `json:"weight"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if req.Weight == nil {
		return badRequest("weight: required")
	}
	if *req.Weight < 0 || *req.Weight > registry.MaxWeight {
		return badRequest("weight: must be between 0 and %d", registry.MaxWeight)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	in, err := srv.store.PatchInstance(ctx, c.Param("name"), c.Param("id"), *req.Weight)
	if err != nil {
		return storeErr(err)
	}
	srv.log.Info("audit", "action", "patch_instance", "service", c.Param("name"), "instance", in.ID, "weight", in.Weight, "client", clientID(c))
	srv.sync.Trigger()
	return c.JSON(http.StatusOK, in)
}

func (srv *Server) deleteInstance(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	if err := srv.store.DeleteInstance(ctx, c.Param("name"), c.Param("id")); err != nil {
		return storeErr(err)
	}
	srv.log.Info("audit", "action", "delete_instance", "service", c.Param("name"), "instance", c.Param("id"), "client", clientID(c))
	srv.sync.Trigger()
	return c.JSON(http.StatusOK, map[string]string{"status": "deleted", "service": c.Param("name"), "id": c.Param("id")})
}

func (srv *Server) heartbeat(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	in, err := srv.store.Heartbeat(ctx, c.Param("name"), c.Param("id"))
	if err != nil {
		return storeErr(err)
	}
	return c.JSON(http.StatusOK, in)
}

func (srv *Server) maintenance(c echo.Context) error {
	var req registry.Maintenance
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	if err := srv.store.SetMaintenance(ctx, c.Param("name"), req); err != nil {
		return storeErr(err)
	}
	srv.log.Info("audit", "action", "maintenance", "service", c.Param("name"), "enabled", req.Enabled, "client", clientID(c))
	return c.JSON(http.StatusOK, map[string]any{"service": c.Param("name"), "maintenance": req})
}

// serviceHealth reports each instance's lease and weight state and the
// plugin's shared circuit-breaker state (breaker.ReadStates, one round trip;
// the plugin scopes its breakers by the registry service name).
func (srv *Server) serviceHealth(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), storeTimeout)
	defer cancel()
	name := c.Param("name")
	s, err := srv.store.GetService(ctx, name)
	if err != nil {
		return storeErr(err)
	}
	now := time.Now()
	type instHealth struct {
		ID        string     `json:"id"`
		Address   string     `json:"address"`
		Weight    int        `json:"weight"`
		Status    string     `json:"status"`
		Breaker   string     `json:"breaker"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	}
	out := make([]instHealth, 0, len(s.Instances))
	healthy := 0
	addrs := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		addrs[i] = in.Address
	}
	states, berr := breaker.ReadStates(ctx, srv.rdb, srv.cfg.Prefix, name, addrs)
	for i, in := range s.Instances {
		h := instHealth{ID: in.ID, Address: in.Address, Weight: in.Weight, Status: "healthy", Breaker: "closed"}
		if !in.ExpiresAt.IsZero() {
			t := in.ExpiresAt
			h.ExpiresAt = &t
		}
		switch {
		case in.Expired(now):
			h.Status = "expired"
		case in.Weight == 0:
			h.Status = "draining"
		}
		switch {
		case berr != nil:
			h.Breaker = "unknown"
		case states[i] == breaker.Open:
			h.Breaker = "open"
		case states[i] == breaker.HalfOpen:
			h.Breaker = "half_open"
		}
		if h.Status == "healthy" && h.Breaker != "open" {
			healthy++
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	status := "healthy"
	switch {
	case s.Maintenance.Enabled:
		status = "maintenance"
	case healthy == 0:
		status = "unhealthy"
	case healthy < len(out):
		status = "degraded"
	}
	return c.JSON(http.StatusOK, map[string]any{
		"service": name, "status": status, "maintenance": s.Maintenance,
		"healthy_instances": healthy, "instances": out,
	})
}

// events streams registry changes as server-sent events until the client
// goes away or the server shuts down.
func (srv *Server) events(c echo.Context) error {
	ctx := c.Request().Context()
	ch, unsubscribe, err := srv.hub.subscribe()
	if errors.Is(err, errTooManyStreams) {
		c.Response().Header().Set("Retry-After", "5")
		return httpError(http.StatusServiceUnavailable, "too many event streams")
	}
	if err != nil {
		return err
	}
	defer unsubscribe()
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	w.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-srv.shutdown():
			return nil
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case ch1, ok := <-ch:
			if !ok {
				return nil
			}
			b, _ := json.Marshal(map[string]any{"service": ch1.Service, "version": ch1.Version})
			fmt.Fprintf(w, "event: change\nid: %d\ndata: %s\n\n", ch1.Version, b)
		}
		w.Flush()
	}
}
