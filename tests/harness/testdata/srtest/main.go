// Command srtest is a tiny go-pdk plugin the harness tests drive over the real
// socket protocol before (and besides) the service-registry plugin. Its config
// picks what the access and log handlers do.
package main

import (
	"fmt"
	"log"
	"strings"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"
	"github.com/Kong/go-pdk/server/kong_plugin_protocol"
)

// Config selects the behaviour; every field is optional.
type Config struct {
	Mode    string `json:"mode"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	LogMode string `json:"log_mode"`
	// UpstreamHost, in target modes: kong.service.request.set_header("host")
	// after set_target ("target") or before it ("host_then_target").
	UpstreamHost string `json:"upstream_host"`
}

func New() interface{} { return &Config{} }

func (c Config) Access(kong *pdk.PDK) {
	switch c.Mode {
	case "", "noop":
	case "host_then_target":
		_ = kong.ServiceRequest.SetHeader("host", c.UpstreamHost)
		_ = kong.Service.SetTarget(c.Host, c.Port)
	case "target":
		_ = kong.Service.SetTarget(c.Host, c.Port)
		if c.UpstreamHost != "" {
			_ = kong.ServiceRequest.SetHeader("host", c.UpstreamHost)
		}
		_ = kong.Response.SetHeader("X-Test-Access", "1")
		_ = kong.ServiceRequest.SetHeader("X-Test-Upstream", "1")
		_ = kong.Ctx.SetShared("picked", fmt.Sprintf("%s:%d", c.Host, c.Port))
	case "exit":
		_ = kong.Response.SetHeader("X-Before-Exit", "1")
		kong.Response.Exit(403, []byte(`{"message":"nope"}`), map[string][]string{
			"Content-Type": {"application/json"}, "X-Exit": {"1"},
		})
	case "getters":
		host, _ := kong.Request.GetHost()
		path, _ := kong.Request.GetPath()
		method, _ := kong.Request.GetMethod()
		scheme, _ := kong.Request.GetScheme()
		port, _ := kong.Request.GetPort()
		hdr, _ := kong.Request.GetHeader("x-in")
		hdrs, _ := kong.Request.GetHeaders(-1)
		ip, _ := kong.Client.GetIp()
		fip, _ := kong.Client.GetForwardedIp()
		route, _ := kong.Router.GetRoute()
		svc, _ := kong.Router.GetService()
		_ = kong.Response.SetHeaders(map[string][]string{
			"X-Host": {host}, "X-Path": {path}, "X-Method": {method}, "X-Scheme": {scheme},
			"X-Port": {fmt.Sprint(port)}, "X-In": {hdr}, "X-In-All": {strings.Join(hdrs["x-in"], ",")},
			"X-Ip": {ip}, "X-Fip": {fip}, "X-Route": {route.Name}, "X-Service": {svc.Name},
			"X-Service-Port": {fmt.Sprint(svc.Port)},
		})
		_ = kong.Response.AddHeader("X-Multi", "a")
		_ = kong.Response.AddHeader("X-Multi", "b")
		kong.Log.Info("getters done for ", path)
	case "bad_target":
		// A Lua error inside set_target: Kong answers 500.
		_ = kong.Service.SetTarget("127.0.0.1", 70000)
	case "unknown_method":
		_ = kong.Request.Ask("kong.request.bogus_method", nil, nil)
	case "unimplemented":
		out := new(kong_plugin_protocol.RawBodyResult)
		_ = kong.Request.Ask("kong.request.get_raw_body", nil, out)
	case "panic":
		panic("srtest: asked to panic")
	}
}

func (c Config) Log(kong *pdk.PDK) {
	switch c.LogMode {
	case "":
	case "serialize":
		s, err := kong.Log.Serialize()
		status, _ := kong.Response.GetStatus()
		picked, _ := kong.Ctx.GetSharedString("picked")
		log.Printf("LOG status=%d picked=%s err=%v serialize=%s", status, picked, err, s)
	case "forbidden":
		// Not saved for the log timer: Kong raises "API disabled in the current context".
		_, err := kong.Request.GetPath()
		log.Printf("LOG forbidden err=%v", err)
	}
}

// version may be set with -ldflags "-X main.version=..." (the harness test
// of Kong's VERSION rule builds it as "dev").
var version = "0.0.1"

func main() {
	if err := server.StartServer(New, version, 10); err != nil {
		log.Fatal(err)
	}
}
