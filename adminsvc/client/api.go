package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"
)

// RouteOptions are the go-proxy registration options (CONTRACT §1). Every
// field is optional; Extra carries option names this client does not know,
// which the registry keeps and returns.
type RouteOptions struct {
	Timeout             string            `json:"timeout,omitempty"`
	Websocket           bool              `json:"websocket,omitempty"`
	Headers             map[string]string `json:"headers,omitempty"`
	RateLimit           *RateLimit        `json:"rate_limit,omitempty"`
	CircuitBreaker      *CircuitBreaker   `json:"circuit_breaker,omitempty"`
	Retry               *RetryOption      `json:"retry,omitempty"`
	HealthCheckPath     string            `json:"health_check_path,omitempty"`
	HealthCheckInterval string            `json:"health_check_interval,omitempty"`
	Extra               map[string]any    `json:"-"`
}

// RateLimit is options.rate_limit.
type RateLimit struct {
	Enabled        bool `json:"enabled"`
	RequestsPerMin int  `json:"requests_per_min,omitempty"`
	PerIP          bool `json:"per_ip,omitempty"`
}

// CircuitBreaker is options.circuit_breaker.
type CircuitBreaker struct {
	Enabled          bool   `json:"enabled"`
	FailureThreshold int    `json:"failure_threshold,omitempty"`
	Timeout          string `json:"timeout,omitempty"`
}

// RetryOption is options.retry (backoff: none, linear or exponential).
type RetryOption struct {
	Enabled     bool   `json:"enabled"`
	MaxAttempts int    `json:"max_attempts,omitempty"`
	Backoff     string `json:"backoff,omitempty"`
}

// MarshalJSON merges Extra into the known fields (known fields win).
func (o RouteOptions) MarshalJSON() ([]byte, error) {
	type plain RouteOptions
	known, err := json.Marshal(plain(o))
	if err != nil || len(o.Extra) == 0 {
		return known, err
	}
	merged := map[string]any{}
	for k, v := range o.Extra {
		merged[k] = v
	}
	var m map[string]any
	if err := json.Unmarshal(known, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		merged[k] = v
	}
	return json.Marshal(merged)
}

// UnmarshalJSON keeps unknown option names in Extra.
func (o *RouteOptions) UnmarshalJSON(b []byte) error {
	type plain RouteOptions
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range []string{"timeout", "websocket", "headers", "rate_limit", "circuit_breaker", "retry", "health_check_path", "health_check_interval"} {
		delete(all, k)
	}
	p.Extra = nil
	if len(all) > 0 {
		p.Extra = make(map[string]any, len(all))
		for k, raw := range all {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			p.Extra[k] = v
		}
	}
	*o = RouteOptions(p)
	return nil
}

// Registration is a go-proxy route: requests for Host+Path go to Backend.
type Registration struct {
	Host    string        `json:"host"`
	Path    string        `json:"path"`
	Backend string        `json:"backend"`
	Options *RouteOptions `json:"options,omitempty"`
}

// RegisterResult is POST /register's answer.
type RegisterResult struct {
	Status  string `json:"status"`
	Host    string `json:"host"`
	Path    string `json:"path"`
	Backend string `json:"backend"`
}

// DeregisterResult is POST /deregister's answer.
type DeregisterResult struct {
	Status string `json:"status"`
	Host   string `json:"host"`
	Path   string `json:"path"`
}

// Route is one entry of GET /routes.
type Route struct {
	Host         string        `json:"host"`
	Path         string        `json:"path"`
	Backend      string        `json:"backend"`
	Options      *RouteOptions `json:"options,omitempty"`
	RegisteredAt time.Time     `json:"registered_at"`
}

// RouteList is GET /routes's answer.
type RouteList struct {
	Routes []Route `json:"routes"`
	Total  int     `json:"total"`
}

// Health is GET /health's answer, healthy or not.
type Health struct {
	Status           string `json:"status"`
	RegisteredRoutes int    `json:"registered_routes"`
	Error            string `json:"error,omitempty"`
	// PendingChanges counts registry changes not yet applied to Kong
	// (Kong unreachable registrations are stored and applied later).
	PendingChanges int `json:"pending_changes,omitempty"`
	// Kong is adminsvc's view of its Kong sync, when it reports one.
	Kong *KongStatus `json:"kong,omitempty"`
	// Raw is the whole answer, for fields this type does not name.
	Raw json.RawMessage `json:"-"`
}

// KongStatus is the "kong" part of /health.
type KongStatus struct {
	LastError string `json:"last_error,omitempty"`
	Leader    bool   `json:"leader,omitempty"`
}

// Register adds a route; registering the same route again is a no-op (200),
// the same host+path with another backend or options is ErrConflict.
func (c *Client) Register(ctx context.Context, r Registration) (RegisterResult, error) {
	var out RegisterResult
	err := c.do(ctx, call{method: "POST", path: "/register", in: r, out: &out})
	return out, err
}

// Deregister removes a route; a route that is not registered is ErrNotFound.
func (c *Client) Deregister(ctx context.Context, host, path string) (DeregisterResult, error) {
	var out DeregisterResult
	in := map[string]string{"host": host, "path": path}
	err := c.do(ctx, call{method: "POST", path: "/deregister", in: in, out: &out})
	return out, err
}

// Routes lists the registered routes, ordered by host then path.
func (c *Client) Routes(ctx context.Context) (RouteList, error) {
	var out RouteList
	err := c.do(ctx, call{method: "GET", path: "/routes", out: &out})
	return out, err
}

// Health asks /health. An unhealthy registry answers 503: then the Health
// value is filled from that answer and the error is an *APIError matching
// ErrUnavailable. A 503 is not retried (it is the answer); transport errors
// are.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var raw json.RawMessage
	err := c.do(ctx, call{method: "GET", path: "/health", out: &raw, keep5xx: true})
	var h Health
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		raw = apiErr.Body
	}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &h)
		h.Raw = raw
	}
	return h, err
}

// Maintenance is a service's maintenance switch.
type Maintenance struct {
	Enabled bool   `json:"enabled"`
	Message string `json:"message,omitempty"`
}

// Instance is one backend of a /v1 service.
type Instance struct {
	ID         string            `json:"id"`
	Address    string            `json:"address"`
	Scheme     string            `json:"scheme,omitempty"`
	Weight     int               `json:"weight"`
	Tags       []string          `json:"tags,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	TTLSeconds int               `json:"ttl_s,omitempty"`
	ExpiresAt  *time.Time        `json:"expires_at,omitempty"`
	UpdatedAt  *time.Time        `json:"updated_at,omitempty"`
	// Health and Breaker are filled by the per-service health view.
	Health  string `json:"health,omitempty"`
	Breaker string `json:"breaker,omitempty"`
}

// Service is a /v1 service: a name, tags and its instances.
type Service struct {
	Name        string      `json:"name"`
	Tags        []string    `json:"tags,omitempty"`
	Version     int64       `json:"version,omitempty"`
	Maintenance Maintenance `json:"maintenance"`
	Instances   []Instance  `json:"instances"`
}

// InstanceSpec is the body of PUT /v1/services/{name}/instances/{id}.
type InstanceSpec struct {
	// Address is host:port.
	Address string `json:"address"`
	// Weight nil leaves the registry's default; 0 drains the instance.
	Weight *int `json:"weight,omitempty"`
	// TTLSeconds > 0 makes the instance a lease renewed by Heartbeat.
	TTLSeconds int               `json:"ttl_s,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// Int returns a pointer to n, for InstanceSpec.Weight.
func Int(n int) *int { return &n }

func servicePath(name string, rest ...string) string {
	var b strings.Builder
	b.WriteString("/v1/services/")
	b.WriteString(url.PathEscape(name))
	for _, r := range rest {
		b.WriteByte('/')
		b.WriteString(r)
	}
	return b.String()
}

// Services lists the /v1 services, filtered to those carrying every tag.
func (c *Client) Services(ctx context.Context, tags ...string) ([]Service, error) {
	var q url.Values
	if len(tags) > 0 {
		q = url.Values{"tags": {strings.Join(tags, ",")}}
	}
	var raw json.RawMessage
	if err := c.do(ctx, call{method: "GET", path: "/v1/services", query: q, out: &raw}); err != nil {
		return nil, err
	}
	return decodeServices(raw)
}

// decodeServices accepts {"services":[...]} and a bare array, so the client
// does not break if the list grows paging fields.
func decodeServices(raw json.RawMessage) ([]Service, error) {
	var list []Service
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var wrapped struct {
		Services []Service `json:"services"`
	}
	if err := json.Unmarshal(raw, &wrapped); err != nil {
		return nil, err
	}
	return wrapped.Services, nil
}

// Service returns one /v1 service; an unknown name is ErrNotFound.
func (c *Client) Service(ctx context.Context, name string) (Service, error) {
	var out Service
	err := c.do(ctx, call{method: "GET", path: servicePath(name), out: &out})
	return out, err
}

// ServiceHealth returns the service with each instance's health and breaker
// state (GET /v1/services/{name}/health), as raw JSON: its shape is richer
// than Service and still growing.
func (c *Client) ServiceHealth(ctx context.Context, name string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, call{method: "GET", path: servicePath(name, "health"), out: &out})
	return out, err
}

// PutInstance creates or replaces an instance of a service.
func (c *Client) PutInstance(ctx context.Context, service, id string, spec InstanceSpec) (Instance, error) {
	var out Instance
	err := c.do(ctx, call{method: "PUT", path: servicePath(service, "instances", url.PathEscape(id)), in: spec, out: &out})
	return out, err
}

// PatchWeight changes an instance's weight (blue-green, canary, drain with 0).
func (c *Client) PatchWeight(ctx context.Context, service, id string, weight int) (Instance, error) {
	var out Instance
	in := map[string]int{"weight": weight}
	err := c.do(ctx, call{method: "PATCH", path: servicePath(service, "instances", url.PathEscape(id)), in: in, out: &out})
	return out, err
}

// DeleteInstance removes an instance; an unknown one is ErrNotFound.
func (c *Client) DeleteInstance(ctx context.Context, service, id string) error {
	return c.do(ctx, call{method: "DELETE", path: servicePath(service, "instances", url.PathEscape(id))})
}

// Heartbeat renews a TTL instance's lease; an expired or unknown instance is
// ErrNotFound (put it again).
func (c *Client) Heartbeat(ctx context.Context, service, id string) error {
	return c.do(ctx, call{method: "POST", path: servicePath(service, "instances", url.PathEscape(id), "heartbeat")})
}

// SetMaintenance switches a service's maintenance mode: while enabled, Kong
// answers 503 with message for it.
func (c *Client) SetMaintenance(ctx context.Context, service string, enabled bool, message string) error {
	in := Maintenance{Enabled: enabled, Message: message}
	return c.do(ctx, call{method: "POST", path: servicePath(service, "maintenance"), in: in})
}
