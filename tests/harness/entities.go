package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// Service is a Kong service. Zero values mean Kong's defaults.
type Service struct {
	ID, Name string
	Protocol string // "http"
	// Host is a hostname or IP, or the name of an Upstream.
	Host string
	Port int    // default 80
	Path string // default none ("/")
	// Retries is Kong's service.retries (default 5); use Int(0) for none.
	Retries        *int
	ConnectTimeout int // ms, default 60000
	WriteTimeout   int
	ReadTimeout    int
	Tags           []string
}

func (s *Service) retries() int {
	if s.Retries == nil {
		return 5
	}
	return *s.Retries
}

func (s *Service) port() int {
	if s.Port == 0 {
		return 80
	}
	return s.Port
}

func (s *Service) protocol() string {
	if s.Protocol == "" {
		return "http"
	}
	return s.Protocol
}

// Route is a Kong route (traditional_compatible router: plain prefix paths,
// hosts with a leading or trailing wildcard, methods).
type Route struct {
	ID, Name     string
	Service      string // service name or id
	Hosts        []string
	Paths        []string
	Methods      []string
	Protocols    []string
	StripPath    *bool // default true
	PreserveHost bool
	Tags         []string
}

func (r *Route) stripPath() bool { return r.StripPath == nil || *r.StripPath }

// Upstream is a Kong upstream with its targets (round-robin by weight).
type Upstream struct {
	ID, Name   string
	HostHeader string
	Targets    []Target
}

// Target is "host:port" with a weight (default 100; 0 disables it).
type Target struct {
	Target string
	Weight *int
}

// PluginConfig creates a plugin entity for the harness's plugin.
type PluginConfig struct {
	ID           string
	Service      string // name or id; empty for none
	Route        string // name or id; empty for none
	InstanceName string
	Config       map[string]any
	// Unchecked skips Kong's schema validation and sends Config as is, to test
	// how the plugin copes with what Kong would have refused.
	Unchecked bool
}

// SchemaError is Kong's schema violation for a plugin entity: Fields is the
// error table under "config", as kongschema returns it.
type SchemaError struct{ Fields map[string]any }

func (e *SchemaError) Error() string { return fmt.Sprintf("schema violation (config: %v)", e.Fields) }

type pluginEntity struct {
	id, serviceID, routeID, instanceName string
	stored                               map[string]any // as Kong stores it (with nulls)
	unchecked                            bool
	seq                                  int64
}

// Int is a helper for optional integer fields.
func Int(v int) *int { return &v }

// Bool is a helper for optional boolean fields.
func Bool(v bool) *bool { return &v }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// defaultWorkspace is the id Kong gives the "default" workspace here.
const defaultWorkspace = "7d4c0c0e-5e8c-4b7a-9a55-6a3c1f1e0001"

// AddService stores a service and returns it with its id.
func (k *Kong) AddService(s Service) *Service {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.ID == "" {
		s.ID = newUUID()
	}
	for _, p := range []*int{&s.ConnectTimeout, &s.WriteTimeout, &s.ReadTimeout} {
		if *p == 0 {
			*p = 60000
		}
	}
	sp := &s
	k.services[s.ID] = sp
	if s.Name != "" {
		k.services[s.Name] = sp
	}
	return sp
}

// AddRoute stores a route; its Service must exist.
func (k *Kong) AddRoute(r Route) (*Route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	svc := k.services[r.Service]
	if svc == nil {
		return nil, fmt.Errorf("route %q: service %q not found", r.Name, r.Service)
	}
	for _, p := range r.Paths {
		if strings.HasPrefix(p, "~") || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("route %q: only plain prefix paths are supported, got %q", r.Name, p)
		}
	}
	if r.ID == "" {
		r.ID = newUUID()
	}
	if r.Protocols == nil {
		r.Protocols = []string{"http", "https"}
	}
	r.Service = svc.ID
	rp := &r
	k.routes = append(k.routes, rp)
	return rp, nil
}

// AddUpstream stores an upstream; services whose Host is its name use it.
func (k *Kong) AddUpstream(u Upstream) *Upstream {
	k.mu.Lock()
	defer k.mu.Unlock()
	if u.ID == "" {
		u.ID = newUUID()
	}
	up := &u
	k.upstreams[u.Name] = up
	return up
}

// SetTargets replaces an upstream's targets (a Kong target change).
func (k *Kong) SetTargets(upstream string, targets []Target) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	u := k.upstreams[upstream]
	if u == nil {
		return fmt.Errorf("upstream %q not found", upstream)
	}
	u.Targets = targets
	return nil
}

func (k *Kong) upstreamByName(name string) *Upstream {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.upstreams[name]
}

// AddPlugin creates a plugin entity after Kong's schema validation; a refused
// config returns *SchemaError. It returns the plugin id.
func (k *Kong) AddPlugin(pc PluginConfig) (string, error) {
	pe := &pluginEntity{id: pc.ID, instanceName: pc.InstanceName, unchecked: pc.Unchecked}
	if pe.id == "" {
		pe.id = newUUID()
	}
	if err := k.setPluginConfig(pe, pc.Config); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if pc.Service != "" {
		s := k.services[pc.Service]
		if s == nil {
			return "", fmt.Errorf("plugin: service %q not found", pc.Service)
		}
		pe.serviceID = s.ID
	}
	if pc.Route != "" {
		for _, r := range k.routes {
			if r.ID == pc.Route || r.Name == pc.Route {
				pe.routeID = r.ID
			}
		}
		if pe.routeID == "" {
			return "", fmt.Errorf("plugin: route %q not found", pc.Route)
		}
	}
	k.seq++
	pe.seq = k.seq
	k.plugins[pe.id] = pe
	return pe.id, nil
}

// UpdatePlugin changes a plugin's config; Kong gives it a new __seq__, so the
// next request starts a new instance and closes the old one.
func (k *Kong) UpdatePlugin(id string, config map[string]any) error {
	k.mu.RLock()
	pe := k.plugins[id]
	k.mu.RUnlock()
	if pe == nil {
		return fmt.Errorf("plugin %q not found", id)
	}
	np := *pe
	if err := k.setPluginConfig(&np, config); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seq++
	np.seq = k.seq
	k.plugins[id] = &np
	return nil
}

// DeletePlugin removes a plugin entity.
func (k *Kong) DeletePlugin(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.plugins, id)
}

// PluginStored is the plugin's config as the Admin API would show it.
func (k *Kong) PluginStored(id string) map[string]any {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if pe := k.plugins[id]; pe != nil {
		return pe.stored
	}
	return nil
}

func (k *Kong) setPluginConfig(pe *pluginEntity, config map[string]any) error {
	if pe.unchecked {
		pe.stored = config
		return nil
	}
	filled, errs := k.plugin.Validate(config)
	if errs != nil {
		return &SchemaError{Fields: errs}
	}
	pe.stored = filled
	return nil
}

// configFor is get_plugin_config: the stored config read back without nulls,
// plus the keys Kong adds before cjson-encoding it for cmd_start_instance.
func (k *Kong) configFor(pe *pluginEntity) map[string]any {
	var cfg map[string]any
	if pe.unchecked {
		cfg = make(map[string]any, len(pe.stored)+6)
		for key, v := range pe.stored {
			cfg[key] = v
		}
	} else {
		cfg = k.plugin.ForPlugin(pe.stored)
	}
	if pe.routeID != "" {
		cfg["route_id"] = pe.routeID
	}
	if pe.serviceID != "" {
		cfg["service_id"] = pe.serviceID
	}
	if pe.instanceName != "" {
		cfg["plugin_instance_name"] = pe.instanceName
	}
	cfg["__plugin_id"] = pe.id
	cfg["__ws_id"] = defaultWorkspace
	// kong.db.plugins:cache_key(name, route_id, service_id, consumer_id, nil, ws_id)
	cfg["__key__"] = fmt.Sprintf("plugins:%s:%s:%s:%s::%s", k.plugin.Name, pe.routeID, pe.serviceID, "", defaultWorkspace)
	cfg["__seq__"] = pe.seq
	return cfg
}

// pluginFor picks the most specific enabled plugin entity for a request, as
// the plugins iterator does for one plugin name: route+service, route,
// service, then global.
func (k *Kong) pluginFor(route *Route, svc *Service) *pluginEntity {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var best *pluginEntity
	bestScore := -1
	for _, pe := range k.plugins {
		score := -1
		switch {
		case pe.routeID == route.ID && pe.serviceID == svc.ID:
			score = 3
		case pe.routeID == route.ID && pe.serviceID == "":
			score = 2
		case pe.routeID == "" && pe.serviceID == svc.ID:
			score = 1
		case pe.routeID == "" && pe.serviceID == "":
			score = 0
		}
		if score > bestScore {
			best, bestScore = pe, score
		}
	}
	return best
}
