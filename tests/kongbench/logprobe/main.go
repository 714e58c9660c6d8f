// Command logprobe measures what learning a request's outcome costs in the
// log phase of a real Kong: an access handler that does nothing and a log
// handler that asks Kong for the status and the tried upstream, the way the
// breaker needs them. Built twice by the kongbench suite; the binary's name
// picks the way:
//
//	log-serialize  kong.log.serialize (one call, Kong encodes the whole log
//	               table as JSON)
//	access-only    no log handler at all: what Kong's log phase for an
//	               external plugin costs by itself (in 3.4 it serializes
//	               the request, clones ngx.ctx and copies the headers for a
//	               timer before any PDK call)
//	log-status     kong.response.get_status + kong.nginx.get_ctx
//	               ("balancer_data") (two smaller calls; kong.nginx.get_var
//	               is refused in Kong 3.4's log timer: "API disabled in the
//	               current context", and the event is aborted)
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"
)

// Config has no fields.
type Config struct{}

var serialize = filepath.Base(os.Args[0]) == "log-serialize"

// Access does nothing.
func (c *Config) Access(*pdk.PDK) {}

// Log learns the outcome.
func (c *Config) Log(k *pdk.PDK) {
	if serialize {
		_, _ = k.Log.Serialize()
		return
	}
	_, _ = k.Response.GetStatus()
	_, _ = k.Nginx.GetCtxAny("balancer_data")
}

// AccessOnly has no Log method: Kong runs no log phase for it.
type AccessOnly struct{}

// Access does nothing.
func (c *AccessOnly) Access(*pdk.PDK) {}

func main() {
	newConfig := func() any { return &Config{} }
	if filepath.Base(os.Args[0]) == "access-only" {
		newConfig = func() any { return &AccessOnly{} }
	}
	if err := server.StartServer(newConfig, "0.1.0", 1000); err != nil {
		fmt.Fprintln(os.Stderr, "logprobe:", err)
		os.Exit(1)
	}
}
