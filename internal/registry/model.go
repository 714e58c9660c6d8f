package registry

import (
	"encoding/json"
	"errors"
	"time"
)

// Instance is one live backend of a service: where to send traffic and how much.
type Instance struct {
	ID       string            `json:"id"`
	Address  string            `json:"address"` // host:port
	Scheme   string            `json:"scheme,omitempty"`
	Weight   int               `json:"weight"` // 0..65535; 0 drains the instance
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// TTLSeconds > 0 makes the instance a lease: it expires at ExpiresAt
	// unless renewed by a heartbeat.
	TTLSeconds int       `json:"ttl_s,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// LeaseEnd is when the instance's lease ends; zero for an instance that
// holds no lease (TTLSeconds 0, or no end recorded).
func (in Instance) LeaseEnd() time.Time {
	if in.TTLSeconds <= 0 {
		return time.Time{}
	}
	return in.ExpiresAt
}

// Expired says whether the instance's lease ended at or before now. An
// instance without a lease never expires. This is the one definition every
// reader uses (the API's health view, the Kong sync, the plugin's snapshot
// and the store's lease index), so they never disagree at the boundary.
func (in Instance) Expired(now time.Time) bool {
	end := in.LeaseEnd()
	return !end.IsZero() && !end.After(now)
}

// Maintenance, when enabled, makes the plugin answer 503 with Message.
type Maintenance struct {
	Enabled bool   `json:"enabled"`
	Message string `json:"message,omitempty"`
}

// Service is a named group of instances, the unit the plugin resolves to.
type Service struct {
	Name        string      `json:"name"`
	Tags        []string    `json:"tags,omitempty"`
	Version     int64       `json:"version"`
	Maintenance Maintenance `json:"maintenance"`
	Instances   []Instance  `json:"instances"`
}

// Route is a go-proxy registration: host + path routed to one backend URL.
// Options are kept as the client sent them (validated by the API layer), so
// unknown option names survive a round trip.
type Route struct {
	Host         string          `json:"host"`
	Path         string          `json:"path"`
	Backend      string          `json:"backend"`
	Options      json.RawMessage `json:"options,omitempty"`
	RegisteredAt time.Time       `json:"registered_at"`
}

// Errors callers distinguish with errors.Is.
var (
	ErrRouteExists      = errors.New("route already exists")
	ErrRouteNotFound    = errors.New("route not found")
	ErrServiceNotFound  = errors.New("service not found")
	ErrInstanceNotFound = errors.New("instance not found")
	// ErrServiceOfRoute: the service is a registered route's; it goes with
	// the route (DeregisterRoute), not alone.
	ErrServiceOfRoute = errors.New("service belongs to a registered route")
	// ErrUnavailable wraps every failure to reach Redis.
	ErrUnavailable = errors.New("registry store unavailable")
)
