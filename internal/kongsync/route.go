package kongsync

import (
	"context"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// route is a Kong route of ours; it always belongs to one of our services.
type route struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Protocols    []string `json:"protocols"`
	Hosts        []string `json:"hosts"`
	Paths        []string `json:"paths"`
	StripPath    bool     `json:"strip_path"`
	PreserveHost bool     `json:"preserve_host"`
	Tags         []string `json:"tags"`
	Service      *ref     `json:"service"`
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
		sameSet(r.Paths, h.Paths) && r.StripPath == h.StripPath && r.PreserveHost == h.PreserveHost &&
		sameSet(r.Tags, h.Tags) && refID(r.Service) == refID(h.Service)
}

func (r route) write(ctx context.Context, c *client, _ bool) error { return writeByID(ctx, c, r) }
func (r route) remove(ctx context.Context, c *client) error        { return removeByID(ctx, c, r) }
