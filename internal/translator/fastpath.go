package translator

import (
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/routeopts"
)

// RouteServing is what the plugin's fast path needs to serve a route the
// way its dedicated Kong entities do, taken from the same translation so
// the two cannot drift apart.
type RouteServing struct {
	// Service is the registry (and Kong) service name.
	Service string
	// ServiceID and PluginID are the ids of the Kong service and of its
	// service-registry plugin: the rate limit counts per plugin entity and
	// service, so the fast path uses them to share the dedicated route's
	// counter.
	ServiceID, PluginID string
	// Protocol is the Kong service's protocol: http or https.
	Protocol string
	// Path is the Kong service's path ("" when the backend has none).
	Path string
	// PreserveHost is the dedicated route's preserve_host.
	PreserveHost bool
	// Config is the service-registry plugin's config on the service.
	Config map[string]any
	// Headers are the response headers the response-transformer adds.
	Headers map[string]string
}

// ForRoute translates one route as Translate would and returns what its
// dedicated service, route and plugins ask for. It always translates in
// plugin scope service: the plugin's config and id are those of the
// route's service-scoped instance, which the global instance (plugin scope
// global) and the fast path serve the route with, in either scope.
func ForRoute(r registry.Route, service string, opts Options) (RouteServing, error) {
	opts.PluginScope = PluginScopeService
	svc, _, err := translateRoute(RouteInput{Route: r, Service: service}, opts)
	if err != nil {
		return RouteServing{}, err
	}
	// translateRoute parsed these options already: they cannot fail here.
	o, err := routeopts.ParseStored(r.Options)
	if err != nil {
		return RouteServing{}, err
	}
	return RouteServing{
		Service:      svc.Name,
		ServiceID:    svc.ID,
		PluginID:     svc.Plugins[0].ID,
		Protocol:     svc.Protocol,
		Path:         svc.Path,
		PreserveHost: svc.Routes[0].PreserveHost,
		Config:       svc.Plugins[0].Config,
		Headers:      o.Headers,
	}, nil
}
