package main

import "github.com/Kong/go-pdk"

// kongAPI is the part of the PDK the handlers use. Every method is one PDK
// call (one socket round trip in a real Kong), so tests count them here.
type kongAPI interface {
	SetTarget(host string, port int) error
	// SetUpstreamHost is kong.service.request.set_header("host", host):
	// the Host sent upstream (ngx.var.upstream_host), which set_target
	// also sets, to the target host.
	SetUpstreamHost(host string) error
	// Exit ends the request with a JSON body.
	Exit(status int, body []byte)
	// ExitHeaders ends the request with a body and these headers (one call).
	ExitHeaders(status int, body []byte, headers map[string][]string)
	// SetHeaders adds response headers (kong.response.set_headers).
	SetHeaders(headers map[string][]string) error
	// ForwardedIP is kong.client.get_forwarded_ip.
	ForwardedIP() (string, error)
	// ConsumerID is kong.client.get_consumer().id ("" when none).
	ConsumerID() (string, error)
	// RequestHeader is kong.request.get_header.
	RequestHeader(name string) (string, error)
	// Serialize is kong.log.serialize (log phase): a JSON document.
	Serialize() (string, error)
	// RouterService returns the id and name of the Kong service matched
	// (kong.router.get_service).
	RouterService() (id, name string, err error)
	// RouterRoute returns the ids of the Kong route matched and of its
	// service (kong.router.get_route).
	RouterRoute() (id, serviceID string, err error)
	// RequestPath is kong.request.get_path: the normalized path, the
	// string Kong's router matched.
	RequestPath() (string, error)
	// SetPath is kong.service.request.set_path (Kong escapes it and
	// appends the query, as for the path its router computes).
	SetPath(path string) error
	// SetScheme is kong.service.request.set_scheme.
	SetScheme(scheme string) error
	// NginxVar is kong.nginx.get_var.
	NginxVar(name string) (string, error)
	// SetShared and GetShared are kong.ctx.shared.set/get with a string
	// value: how the access phase tells the log phase something.
	SetShared(key, value string) error
	GetShared(key string) (string, error)
}

// pdkAPI is kongAPI over go-pdk: one PDK call per method, each counted
// for metrics (one atomic add).
type pdkAPI struct{ k *pdk.PDK }

var jsonHeaders = map[string][]string{"Content-Type": {"application/json"}}

func count(c pdkCall) { metrics.pdk[c].Add(1) }

func (p pdkAPI) SetTarget(host string, port int) error {
	count(callSetTarget)
	return p.k.Service.SetTarget(host, port)
}
func (p pdkAPI) SetUpstreamHost(host string) error {
	count(callSetUpstreamHost)
	return p.k.ServiceRequest.SetHeader("host", host)
}
func (p pdkAPI) Exit(status int, body []byte) {
	count(callExit)
	p.k.Response.Exit(status, body, jsonHeaders)
}
func (p pdkAPI) ExitHeaders(status int, body []byte, h map[string][]string) {
	count(callExit)
	p.k.Response.Exit(status, body, h)
}
func (p pdkAPI) SetHeaders(h map[string][]string) error {
	count(callSetHeaders)
	return p.k.Response.SetHeaders(h)
}
func (p pdkAPI) ForwardedIP() (string, error) {
	count(callForwardedIP)
	return p.k.Client.GetForwardedIp()
}
func (p pdkAPI) RequestHeader(name string) (string, error) {
	count(callRequestHeader)
	return p.k.Request.GetHeader(name)
}
func (p pdkAPI) Serialize() (string, error) {
	count(callSerialize)
	return p.k.Log.Serialize()
}
func (p pdkAPI) ConsumerID() (string, error) {
	count(callConsumer)
	c, err := p.k.Client.GetConsumer()
	return c.Id, err
}
func (p pdkAPI) RouterService() (string, string, error) {
	count(callRouterService)
	s, err := p.k.Router.GetService()
	return s.Id, s.Name, err
}
func (p pdkAPI) RouterRoute() (string, string, error) {
	count(callRouterRoute)
	r, err := p.k.Router.GetRoute()
	return r.Id, r.Service.Id, err
}
func (p pdkAPI) RequestPath() (string, error) {
	count(callRequestPath)
	return p.k.Request.GetPath()
}
func (p pdkAPI) SetPath(path string) error {
	count(callSetPath)
	return p.k.ServiceRequest.SetPath(path)
}
func (p pdkAPI) SetScheme(scheme string) error {
	count(callSetScheme)
	return p.k.ServiceRequest.SetScheme(scheme)
}
func (p pdkAPI) NginxVar(name string) (string, error) {
	count(callNginxVar)
	return p.k.Nginx.GetVar(name)
}
func (p pdkAPI) SetShared(key, value string) error {
	count(callSetShared)
	return p.k.Ctx.SetShared(key, value)
}

// GetShared answers "" without error for an unset key (go-pdk reports a
// type error for the nil Kong sends then).
func (p pdkAPI) GetShared(key string) (string, error) {
	count(callGetShared)
	v, err := p.k.Ctx.GetSharedAny(key)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}
