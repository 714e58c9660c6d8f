// Command emptyplugin is the benchmark's reference go-pdk plugin: access and
// log handlers that do nothing, so a route with it costs exactly what Kong's
// plugin server protocol costs (two events per request, no PDK call). The
// kongbench suite builds it as "empty-gopdk" and measures service-registry
// against it.
package main

import (
	"fmt"
	"os"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"
)

// Config has no fields: Kong's schema for it is an empty record.
type Config struct{}

// New is go-pdk's constructor.
func New() any { return &Config{} }

// Access does nothing.
func (c *Config) Access(*pdk.PDK) {}

// Log does nothing.
func (c *Config) Log(*pdk.PDK) {}

func main() {
	if err := server.StartServer(New, "0.1.0", 1000); err != nil {
		fmt.Fprintln(os.Stderr, "emptyplugin:", err)
		os.Exit(1)
	}
}
