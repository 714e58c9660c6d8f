package translator

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/routeopts"
)

// Tags every managed entity carries.
const (
	TagManaged    = "managed-by:service-registry"
	TagHostPrefix = "sr-host:"
	TagPathPrefix = "sr-path:"
)

// Plugin names.
const (
	PluginRegistry            = "service-registry"
	PluginResponseTransformer = "response-transformer"
)

// Defaults applied when an option asks for a feature without saying how much.
const (
	kongDefaultTimeoutMS        = 60000
	kongDefaultRetries          = 5
	defaultRetryAttempts        = 3
	defaultHealthCheckInterval  = 10 * time.Second
	defaultHealthCheckPath      = "/"
	defaultHealthCheckThreshold = 3
	defaultTargetWeight         = 100
)

// RouteInput is one registered route with the registry service it resolves
// to (registry.ServiceName(host, path)) and that service's live instances.
type RouteInput struct {
	Route     registry.Route
	Service   string
	Instances []registry.Instance
}

// Options are the parts of the desired state that come from adminsvc's
// settings rather than from the registry.
type Options struct {
	// Redis is the service-registry plugin's config.redis record: how the
	// plugin reaches the registry's Redis (host, port, password, ...). Empty
	// values are left out so the plugin's schema defaults apply.
	Redis map[string]any `json:"redis"`
	// FastPath adds the catch-all entities of the fast path (FastPath).
	FastPath bool `json:"fast_path"`
	// PluginScope is where the service-registry plugin goes: service (on
	// each registered route's service; also when empty) or global (one
	// global instance, GlobalPlugin; global.go). The fast path's catch-all
	// keeps its own service-scoped instance in both.
	PluginScope string `json:"plugin_scope,omitempty"`
}

// Translate computes the desired Kong state. It never fails as a whole: a
// route that cannot be translated lands in State.Errors.
func Translate(routes []RouteInput, opts Options) State {
	st := State{Services: []Service{}, Upstreams: []Upstream{}}
	for _, ri := range routes {
		svc, up, err := translateRoute(ri, opts)
		if err != nil {
			st.Errors = append(st.Errors, RouteError{Host: ri.Route.Host, Path: ri.Route.Path, Error: err.Error()})
			continue
		}
		st.Services = append(st.Services, svc)
		st.Upstreams = append(st.Upstreams, up)
	}
	if opts.FastPath {
		svc, up := FastPath(opts)
		st.Services = append(st.Services, svc)
		st.Upstreams = append(st.Upstreams, up)
	}
	if globalScope(opts) {
		st.Plugins = []Plugin{GlobalPlugin(opts)}
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	sort.Slice(st.Upstreams, func(i, j int) bool { return st.Upstreams[i].Name < st.Upstreams[j].Name })
	return st
}

func translateRoute(ri RouteInput, opts Options) (Service, Upstream, error) {
	r := ri.Route
	name := ri.Service
	if !validName(name) {
		return Service{}, Upstream{}, fmt.Errorf("invalid kong name %q", name)
	}
	o, err := routeopts.ParseStored(r.Options)
	if err != nil {
		return Service{}, Upstream{}, err
	}
	be, err := parseBackend(r.Backend)
	if err != nil {
		return Service{}, Upstream{}, err
	}
	tags := Tags(r.Host, r.Path)
	upName := upstreamName(name)
	svc := service(name, upName, be, o, tags)
	svc.Routes = []Route{{
		ID:   ID("route", name),
		Name: name,
		// Kong OSS 3.x routes accept no ws/wss protocol: websocket is a
		// documented no-op because Kong proxies Upgrade requests anyway.
		Protocols:    []string{"http", "https"},
		Hosts:        []string{r.Host},
		Paths:        []string{r.Path},
		StripPath:    false,
		PreserveHost: true,
		Tags:         tags,
	}}
	var registry Plugin
	svc.Plugins, registry = plugins(name, svc.Routes[0].PreserveHost, o, opts, tags)
	if globalScope(opts) {
		svc.RegistryPlugin = &registry
	}
	up := Upstream{
		ID:         ID("upstream", upName),
		Name:       upName,
		Algorithm:  "round-robin",
		HostHeader: be.host,
		Tags:       tags,
		Targets:    targets(name, net.JoinHostPort(be.host, strconv.Itoa(be.port)), ri.Instances, tags),
	}
	if o.HealthCheckPath != "" || o.HealthCheckInterval > 0 {
		up.Healthchecks = healthchecks(be.protocol, o)
	}
	return svc, up, nil
}

// backend is a route's backend URL as Kong takes it.
type backend struct {
	protocol, host, path string
	port                 int
}

func parseBackend(raw string) (backend, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return backend{}, fmt.Errorf("backend: invalid url %q", raw)
	}
	be := backend{protocol: "http", port: 80, host: u.Hostname()}
	switch u.Scheme {
	case "http", "ws":
	case "https", "wss":
		// Kong OSS has no ws/wss service protocol: websockets are proxied
		// as an HTTP upgrade over http/https.
		be.protocol, be.port = "https", 443
	default:
		return backend{}, fmt.Errorf("backend: unsupported scheme %q", u.Scheme)
	}
	// Kong refuses the upstream (host_header) and target of a host it
	// cannot read; the route must fail here, visibly, not in every reconcile.
	if err := registry.ValidateHost(be.host); err != nil {
		return backend{}, fmt.Errorf("backend: %w", err)
	}
	if p := u.Port(); p != "" {
		if be.port, err = strconv.Atoi(p); err != nil || be.port < 1 || be.port > 65535 {
			return backend{}, fmt.Errorf("backend: invalid port %q", p)
		}
	}
	if p := u.EscapedPath(); p != "" && p != "/" {
		be.path = p
	}
	return be, nil
}

// service is the Kong service of a route: its upstream as host, the
// route's timeout and retry options.
func service(name, upName string, be backend, o routeopts.Options, tags []string) Service {
	svc := Service{
		ID:             ID("service", name),
		Name:           name,
		Protocol:       be.protocol,
		Host:           upName,
		Port:           be.port,
		Path:           be.path,
		ConnectTimeout: kongDefaultTimeoutMS,
		ReadTimeout:    kongDefaultTimeoutMS,
		WriteTimeout:   kongDefaultTimeoutMS,
		Retries:        kongDefaultRetries,
		Tags:           tags,
		Plugins:        []Plugin{},
	}
	if o.Timeout > 0 {
		ms := int(o.Timeout / time.Millisecond)
		svc.ConnectTimeout, svc.ReadTimeout, svc.WriteTimeout = ms, ms, ms
	}
	if o.Retry != nil {
		svc.Retries = 0
		if o.Retry.Enabled {
			attempts := o.Retry.MaxAttempts
			if attempts == 0 {
				attempts = defaultRetryAttempts
			}
			svc.Retries = min(attempts-1, 32767)
		}
	}
	return svc
}

// plugins are the service's plugin instances: the registry plugin
// (carrying the route's preserve_host) unless the global one serves every
// route (plugin scope global), and a response-transformer when the route
// adds headers. The registry plugin is returned apart too: in scope global
// the sync falls back to it when Kong cannot take our global plugin.
func plugins(name string, preserveHost bool, o routeopts.Options, opts Options, tags []string) ([]Plugin, Plugin) {
	out := make([]Plugin, 0, 2)
	registry := Plugin{
		ID:      ID("plugin", name+"/"+PluginRegistry),
		Name:    PluginRegistry,
		Enabled: true,
		Config:  RegistryConfig(name, preserveHost, o, opts),
		Tags:    tags,
	}
	if !globalScope(opts) {
		out = append(out, registry)
	}
	if len(o.Headers) > 0 {
		add := make([]string, 0, len(o.Headers))
		for k, v := range o.Headers {
			add = append(add, k+":"+v)
		}
		sort.Strings(add)
		out = append(out, Plugin{
			ID:      ID("plugin", name+"/"+PluginResponseTransformer),
			Name:    PluginResponseTransformer,
			Enabled: true,
			Config:  map[string]any{"add": map[string]any{"headers": add}},
			Tags:    tags,
		})
	}
	return out, registry
}

// RegistryConfig is the plugin's config on a route's dedicated service;
// the fast path serves the route with the same one (ForRoute), so both
// share the rate-limit counter and the breakers. preserve_host repeats the
// route's: the plugin's set_target would otherwise make the instance the
// upstream Host, and the config is where the plugin learns it without a
// PDK call.
func RegistryConfig(service string, preserveHost bool, o routeopts.Options, opts Options) map[string]any {
	cfg := map[string]any{"registry": "redis", "service": service, "preserve_host": preserveHost}
	if redis := redisConfig(opts); len(redis) > 0 {
		cfg["redis"] = redis
	}
	if rl := o.RateLimit; rl != nil {
		m := map[string]any{"enabled": rl.Enabled}
		if rl.RequestsPerMin > 0 {
			m["requests_per_min"] = rl.RequestsPerMin
			// go-proxy users (like Kong's minute: N) expect N requests to be
			// able to arrive at once. The plugin's GCRA paces strictly with
			// burst 0, so allow N-1 on top of the pace: N at once, never more
			// than 2N-1 in any rolling minute (Kong's fixed windows: 2N).
			if rl.RequestsPerMin > 1 {
				// Capped at the limiter's bound, which the plugin's
				// schema enforces (Kong would refuse the config).
				m["burst"] = min(rl.RequestsPerMin-1, ratelimit.MaxBurst)
			}
		}
		if rl.PerIP {
			m["per_ip"] = true
		}
		cfg["rate_limit"] = m
	}
	if cb := o.CircuitBreaker; cb != nil {
		m := map[string]any{"enabled": cb.Enabled}
		if cb.FailureThreshold > 0 {
			m["failure_threshold"] = cb.FailureThreshold
		}
		if cb.Timeout > 0 {
			m["timeout_ms"] = int(cb.Timeout / time.Millisecond)
		}
		cfg["circuit_breaker"] = m
	}
	return cfg
}

func healthchecks(protocol string, o routeopts.Options) map[string]any {
	path := o.HealthCheckPath
	if path == "" {
		path = defaultHealthCheckPath
	}
	interval := o.HealthCheckInterval
	if interval == 0 {
		interval = defaultHealthCheckInterval
	}
	secs := interval.Seconds()
	return map[string]any{
		"active": map[string]any{
			"type":      protocol,
			"http_path": path,
			"healthy": map[string]any{
				"interval":  secs,
				"successes": 1,
			},
			"unhealthy": map[string]any{
				"interval":      secs,
				"http_failures": defaultHealthCheckThreshold,
				"tcp_failures":  defaultHealthCheckThreshold,
				"timeouts":      defaultHealthCheckThreshold,
			},
		},
	}
}

// targets are the route's backend plus the registry service's instances; an
// instance at the backend's address replaces it (its weight wins).
func targets(service, backend string, instances []registry.Instance, tags []string) []Target {
	byAddr := map[string]int{backend: defaultTargetWeight}
	for _, in := range instances {
		// An address the store would refuse (written around it) would make
		// Kong refuse the whole upstream: leave that one target out.
		if _, _, ok := registry.SplitAddress(in.Address); !ok {
			continue
		}
		w := in.Weight
		if w < 0 {
			w = 0
		}
		byAddr[in.Address] = min(w, 65535)
	}
	out := make([]Target, 0, len(byAddr))
	for addr, w := range byAddr {
		out = append(out, Target{ID: ID("target", service+"/"+addr), Target: addr, Weight: w, Tags: tags})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// Tags are the tags of every entity of the route host+path. Kong tags are
// printable ASCII without ',' and '/', so the path is percent-encoded for
// those two (and '%' itself), which keeps it readable and reversible; a host
// or path that still breaks the rules is replaced by a short stable hash.
func Tags(host, path string) []string {
	return []string{TagManaged, TagHostPrefix + tagValue(host), TagPathPrefix + tagValue(path)}
}

var tagEscaper = strings.NewReplacer("%", "%25", "/", "%2F", ",", "%2C")

func tagValue(s string) string {
	v := tagEscaper.Replace(s)
	if validTag(v) {
		return v
	}
	sum := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(sum[:6])
}

func validTag(s string) bool {
	// Kong's tag rule works on UTF-8 text; invalid bytes are refused there.
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 32 || c == 127 || c == ',' || c == '/' || c > 244 {
			return false
		}
	}
	return true
}

// validName follows Kong's utf8_name: alphanumerics and . - _ ~.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// upstreamName turns a service name into a valid Kong upstream name (a
// hostname: letters, digits, '-', '.', '_'; no label ending in '-'). Kong
// compares upstream names as hostnames, case-insensitively, while service
// names are case-sensitive (paths are): whenever the name had to change, a
// short hash of the original keeps two services from sharing an upstream.
func upstreamName(service string) string {
	b := []byte(strings.ToLower(service))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '-'
		}
	}
	labels := strings.Split(string(b), ".")
	for i, l := range labels {
		l = strings.TrimRight(l, "-")
		if l == "" {
			l = "x"
		}
		labels[i] = l
	}
	name := strings.Join(labels, ".")
	if name != service {
		sum := sha256.Sum256([]byte(service))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	return name + ".upstream"
}

// ID is the deterministic UUID of a managed entity (name-based, version 5
// layout), so DB-less pushes are stable and DB-mode writes can upsert by id.
func ID(kind, key string) string {
	sum := sha1.Sum([]byte("service-registry/" + kind + "/" + key))
	b := sum[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
