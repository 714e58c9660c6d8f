package translator

// The desired-state model mirrors Kong's declarative format (field names and
// nesting as in kong.yml), so a DB-less push can marshal it as is and a golden
// file reads like Kong configuration.

// State is every Kong entity the registry wants, sorted by name.
type State struct {
	Services  []Service  `json:"services"`
	Upstreams []Upstream `json:"upstreams"`
	// Plugins are global plugin instances (no service, route or consumer),
	// as kong.yml's top-level plugins: the one of plugin scope global.
	Plugins []Plugin     `json:"plugins,omitempty"`
	Errors  []RouteError `json:"errors,omitempty"`
}

// Service is a Kong service with its routes and plugins nested.
type Service struct {
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
	Routes         []Route  `json:"routes"`
	Plugins        []Plugin `json:"plugins"`
	// RegistryPlugin is, in plugin scope global, the service-registry
	// plugin this service carries in scope service (not in Plugins): the
	// sync puts it back when an operator's own global service-registry
	// plugin holds the place of ours (ServiceScope). Never marshalled.
	RegistryPlugin *Plugin `json:"-"`
}

// Route is a Kong route; it always belongs to the service it is nested in.
type Route struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Protocols []string `json:"protocols"`
	// Hosts is left out when empty: Kong ranks a route whose hosts is a
	// list (even []) higher than one without (the catch-all, catchall.go).
	Hosts        []string `json:"hosts,omitempty"`
	Paths        []string `json:"paths"`
	StripPath    bool     `json:"strip_path"`
	PreserveHost bool     `json:"preserve_host"`
	Tags         []string `json:"tags"`
}

// Plugin is a plugin instance scoped to the service it is nested in, or
// global in State.Plugins.
type Plugin struct {
	ID      string         `json:"id"`
	Name    string         `json:"name"`
	Enabled bool           `json:"enabled"`
	Config  map[string]any `json:"config"`
	Tags    []string       `json:"tags"`
}

// Upstream is a Kong upstream with its targets nested.
type Upstream struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Algorithm    string         `json:"algorithm"`
	HostHeader   string         `json:"host_header,omitempty"`
	Healthchecks map[string]any `json:"healthchecks,omitempty"`
	Tags         []string       `json:"tags"`
	Targets      []Target       `json:"targets"`
}

// Target is one backend address of an upstream.
type Target struct {
	ID     string   `json:"id"`
	Target string   `json:"target"`
	Weight int      `json:"weight"`
	Tags   []string `json:"tags"`
}

// RouteError reports one route that could not be translated.
type RouteError struct {
	Host  string `json:"host"`
	Path  string `json:"path"`
	Error string `json:"error"`
}

// ServiceScope is st in plugin scope service: each route service's
// RegistryPlugin back among its plugins (first, as Translate puts it), and
// the global plugin gone. st is left as it is.
func ServiceScope(st State) State {
	out := st
	out.Plugins = nil
	out.Services = make([]Service, len(st.Services))
	for i, s := range st.Services {
		if s.RegistryPlugin != nil {
			s.Plugins = append([]Plugin{*s.RegistryPlugin}, s.Plugins...)
			s.RegistryPlugin = nil
		}
		out.Services[i] = s
	}
	return out
}
