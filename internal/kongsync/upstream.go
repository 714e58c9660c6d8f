package kongsync

import (
	"context"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// upstream is a Kong upstream of ours; its targets are target entities.
type upstream struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Algorithm    string         `json:"algorithm"`
	HostHeader   string         `json:"host_header,omitempty"`
	Healthchecks map[string]any `json:"healthchecks,omitempty"`
	Tags         []string       `json:"tags"`
}

func newUpstream(u translator.Upstream) upstream {
	return upstream{ID: u.ID, Name: u.Name, Algorithm: u.Algorithm, HostHeader: u.HostHeader,
		Healthchecks: u.Healthchecks, Tags: u.Tags}
}

func (u upstream) kind() kind        { return kindUpstream }
func (u upstream) id() string        { return u.ID }
func (u upstream) label() string     { return u.Name }
func (u upstream) parent() string    { return "" }
func (u upstream) tagList() []string { return u.Tags }

// same ignores what we do not set: without a host header or health checks
// of ours, Kong's values (defaults) are not drift.
func (u upstream) same(have entity) bool {
	h, ok := have.(upstream)
	return ok && u.Name == h.Name && u.Algorithm == h.Algorithm &&
		(u.HostHeader == "" || u.HostHeader == h.HostHeader) &&
		(len(u.Healthchecks) == 0 || sameJSON(u.Healthchecks, h.Healthchecks)) && sameSet(u.Tags, h.Tags)
}

func (u upstream) write(ctx context.Context, c *client, _ bool) error { return writeByID(ctx, c, u) }
func (u upstream) remove(ctx context.Context, c *client) error        { return removeByID(ctx, c, u) }
