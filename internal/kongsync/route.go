package kongsync

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// route is a Kong route of ours; it always belongs to one of our services.
type route struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Protocols    []string `json:"protocols"`
	Hosts        []string `json:"hosts,omitempty"`
	Paths        []string `json:"paths"`
	StripPath    bool     `json:"strip_path"`
	PreserveHost bool     `json:"preserve_host"`
	Tags         []string `json:"tags"`
	Service      *ref     `json:"service"`
	// emptyHosts: Kong holds hosts as [] rather than null. Kong ranks such
	// a route as if it had a plain host (translator.FastPath), so a route
	// we want without hosts is written again (once: a write without the
	// key makes Kong store null).
	emptyHosts bool
}

// UnmarshalJSON reads a route as Kong writes it, telling hosts [] from
// null (both are an empty Hosts).
func (r *route) UnmarshalJSON(b []byte) error {
	type plain route
	var p struct {
		plain
		RawHosts json.RawMessage `json:"hosts"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = route(p.plain)
	r.Hosts, r.emptyHosts = nil, false
	switch raw := bytes.TrimSpace(p.RawHosts); string(raw) {
	case "", "null":
	case "[]", "{}": // {}: cjson's empty table
		r.emptyHosts = true
	default:
		if err := json.Unmarshal(raw, &r.Hosts); err != nil {
			return err
		}
	}
	return nil
}

func newRoute(r translator.Route, serviceID string) route {
	return route{ID: r.ID, Name: r.Name, Protocols: r.Protocols, Hosts: r.Hosts, Paths: r.Paths,
		StripPath: r.StripPath, PreserveHost: r.PreserveHost, Tags: r.Tags, Service: &ref{ID: serviceID}}
}

func (r route) kind() kind        { return kindRoute }
func (r route) id() string        { return r.ID }
func (r route) label() string     { return r.Name }
func (r route) parent() string    { return "" }
func (r route) tagList() []string { return r.Tags }

func (r route) same(have entity) bool {
	h, ok := have.(route)
	return ok && r.Name == h.Name && sameSet(r.Protocols, h.Protocols) && sameSet(r.Hosts, h.Hosts) &&
		(len(r.Hosts) > 0 || !h.emptyHosts) &&
		sameSet(r.Paths, h.Paths) && r.StripPath == h.StripPath && r.PreserveHost == h.PreserveHost &&
		sameSet(r.Tags, h.Tags) && refID(r.Service) == refID(h.Service)
}

func (r route) write(ctx context.Context, c *client, _ bool) error { return writeByID(ctx, c, r) }
func (r route) remove(ctx context.Context, c *client) error        { return removeByID(ctx, c, r) }
