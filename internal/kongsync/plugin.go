package kongsync

import (
	"context"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// plugin is a plugin instance of ours, scoped to one of our services, or
// global (the one of plugin scope global) when Service is nil.
type plugin struct {
	ID      string         `json:"id"`
	Name    string         `json:"name"`
	Enabled bool           `json:"enabled"`
	Config  map[string]any `json:"config"`
	Tags    []string       `json:"tags"`
	// Service is sent as null for a global plugin: a PUT replaces the
	// whole entity, so a plugin once scoped would otherwise stay scoped.
	Service *ref `json:"service"`
}

// newPlugin is p on the service serviceID, or global when serviceID is "".
func newPlugin(p translator.Plugin, serviceID string) plugin {
	cfg := p.Config
	if cfg == nil {
		cfg = map[string]any{}
	}
	var svc *ref
	if serviceID != "" {
		svc = &ref{ID: serviceID}
	}
	return plugin{ID: p.ID, Name: p.Name, Enabled: p.Enabled, Config: cfg, Tags: p.Tags, Service: svc}
}

// global reports whether e is our global plugin.
func global(e entity) bool { return e.kind() == kindPlugin && translator.IsGlobal(e.tagList()) }

func (p plugin) kind() kind        { return kindPlugin }
func (p plugin) id() string        { return p.ID }
func (p plugin) label() string     { return p.Name }
func (p plugin) parent() string    { return "" }
func (p plugin) tagList() []string { return p.Tags }

// same compares the config as a subset: Kong fills in the schema's defaults.
func (p plugin) same(have entity) bool {
	h, ok := have.(plugin)
	return ok && p.Name == h.Name && p.Enabled == h.Enabled && sameJSON(p.Config, h.Config) &&
		sameSet(p.Tags, h.Tags) && refID(p.Service) == refID(h.Service)
}

func (p plugin) write(ctx context.Context, c *client, _ bool) error { return writeByID(ctx, c, p) }
func (p plugin) remove(ctx context.Context, c *client) error        { return removeByID(ctx, c, p) }
