package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
)

// serviceFile is a Microkubes-style service config:
//
//	{"service": {"name": "hello", "port": 8080, "paths": ["/hello"],
//	             "virtual_host": "hello.service.consul", "hosts": ["api.example.com"],
//	             "weight": 10, "slots": 100},
//	 "gatewayUrl": "http://kong:8000", "gatewayAdminUrl": "http://kong:8001"}
//
// Fields this project adds (all optional): service.host (the backend host
// when it differs from virtual_host), service.scheme, service.backend (a
// whole backend URL), service.instance_id, service.ttl_s, service.options
// (go-proxy registration options) and the top-level registryUrl.
type serviceFile struct {
	Service         serviceConfig `json:"service"`
	GatewayURL      string        `json:"gatewayUrl,omitempty"`
	GatewayAdminURL string        `json:"gatewayAdminUrl,omitempty"`
	RegistryURL     string        `json:"registryUrl,omitempty"`
}

type serviceConfig struct {
	Name        string               `json:"name"`
	Port        int                  `json:"port"`
	Paths       []string             `json:"paths"`
	VirtualHost string               `json:"virtual_host"`
	Hosts       []string             `json:"hosts"`
	Weight      *int                 `json:"weight"`
	Slots       int                  `json:"slots"`
	Host        string               `json:"host"`
	Scheme      string               `json:"scheme"`
	Backend     string               `json:"backend"`
	InstanceID  string               `json:"instance_id"`
	TTLSeconds  int                  `json:"ttl_s"`
	Tags        []string             `json:"tags"`
	Options     *client.RouteOptions `json:"options"`
}

// plan is what a service file turns into: one go-proxy route per
// host × path, all to the same backend, and a /v1 instance when the file
// asks for one (weight, instance_id or ttl_s set). The instance goes under
// Service, or when that is empty under each route's service
// (client.RouteService), where it becomes one more target of the route.
type plan struct {
	Routes     []client.Registration
	Service    string
	InstanceID string
	Instance   *client.InstanceSpec
	Registry   string
}

func loadServiceFile(path string) (serviceFile, error) {
	var f serviceFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("reading service config: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("parsing service config %s: %w", path, err)
	}
	return f, nil
}

// planFor maps the Microkubes fields onto the registry API:
//   - route hosts: service.hosts, else [virtual_host]
//   - paths: service.paths
//   - backend: service.backend, else scheme://(host or virtual_host or name):port
//   - instance (when weight, instance_id or ttl_s is set): under each
//     route's service, id instance_id (default host:port), address
//     host:port, weight, ttl_s. For the first replica that is its own
//     backend with a weight; further replicas (whose register gets 409)
//     join with `srctl run`.
func planFor(f serviceFile) (plan, error) {
	s := f.Service
	var p plan
	if s.Name == "" {
		return p, errors.New("service config: service.name is required")
	}
	if len(s.Paths) == 0 {
		return p, errors.New("service config: service.paths needs at least one path")
	}
	hosts := s.Hosts
	if len(hosts) == 0 && s.VirtualHost != "" {
		hosts = []string{s.VirtualHost}
	}
	if len(hosts) == 0 {
		return p, errors.New("service config: set service.hosts or service.virtual_host")
	}
	backend := s.Backend
	var address string
	if backend == "" {
		if s.Port <= 0 || s.Port > 65535 {
			return p, fmt.Errorf("service config: service.port %d out of range 1..65535", s.Port)
		}
		host := firstNonEmpty(s.Host, s.VirtualHost, s.Name)
		scheme := firstNonEmpty(s.Scheme, "http")
		address = net.JoinHostPort(host, strconv.Itoa(s.Port))
		backend = scheme + "://" + address
	}
	for _, h := range hosts {
		for _, path := range s.Paths {
			p.Routes = append(p.Routes, client.Registration{Host: h, Path: path, Backend: backend, Options: s.Options})
		}
	}
	if s.Weight != nil || s.InstanceID != "" || s.TTLSeconds > 0 {
		if address == "" {
			return p, errors.New("service config: an instance (weight, instance_id, ttl_s) needs service.port, not service.backend")
		}
		p.InstanceID = firstNonEmpty(s.InstanceID, address)
		p.Instance = &client.InstanceSpec{Address: address, Weight: s.Weight, TTLSeconds: s.TTLSeconds, Tags: s.Tags}
	}
	p.Registry = f.RegistryURL
	return p, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// instanceServices are the services the plan's instance goes under.
func (p plan) instanceServices() []string {
	if p.Service != "" {
		return []string{p.Service}
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range p.Routes {
		if name := client.RouteService(r.Host, r.Path); !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}
