package kongsync

import (
	"context"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// service is a Kong service of ours.
type service struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Protocol       string   `json:"protocol"`
	Host           string   `json:"host"`
	Port           int      `json:"port"`
	Path           string   `json:"path,omitempty"`
	ConnectTimeout int      `json:"connect_timeout"`
	ReadTimeout    int      `json:"read_timeout"`
	WriteTimeout   int      `json:"write_timeout"`
	Retries        int      `json:"retries"`
	Tags           []string `json:"tags"`
}

func newService(s translator.Service) service {
	return service{ID: s.ID, Name: s.Name, Protocol: s.Protocol, Host: s.Host, Port: s.Port, Path: s.Path,
		ConnectTimeout: s.ConnectTimeout, ReadTimeout: s.ReadTimeout, WriteTimeout: s.WriteTimeout,
		Retries: s.Retries, Tags: s.Tags}
}

func (s service) kind() kind        { return kindService }
func (s service) id() string        { return s.ID }
func (s service) label() string     { return s.Name }
func (s service) parent() string    { return "" }
func (s service) tagList() []string { return s.Tags }

func (s service) same(have entity) bool {
	h, ok := have.(service)
	return ok && s.Name == h.Name && s.Protocol == h.Protocol && s.Host == h.Host && s.Port == h.Port &&
		(s.Path == "" || s.Path == h.Path) && s.ConnectTimeout == h.ConnectTimeout &&
		s.ReadTimeout == h.ReadTimeout && s.WriteTimeout == h.WriteTimeout && s.Retries == h.Retries &&
		sameSet(s.Tags, h.Tags)
}

func (s service) write(ctx context.Context, c *client, _ bool) error { return writeByID(ctx, c, s) }
func (s service) remove(ctx context.Context, c *client) error        { return removeByID(ctx, c, s) }
