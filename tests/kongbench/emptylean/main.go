// Command emptylean is the benchmark's empty plugin (access and log
// handlers that do nothing) served by tests/kongbench/pdkserve instead of go-pdk's
// server loop, so the two loops are measured against each other in one
// run. The kongbench suite builds it as "empty-lean".
package main

import (
	"fmt"
	"os"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"

	"github.com/kong-service-registry/service-registry/tests/kongbench/pdkserve"
)

// Config has no fields.
type Config struct{}

// Access does nothing.
func (c *Config) Access(*pdk.PDK) {}

// Log does nothing.
func (c *Config) Log(*pdk.PDK) {}

func main() {
	for _, a := range os.Args[1:] {
		if a == "-dump" || a == "--dump" {
			// go-pdk's dump (schema from the Config type), as Kong queries it
			if err := server.StartServer(func() any { return &Config{} }, "0.1.0", 1000); err != nil {
				fmt.Fprintln(os.Stderr, "emptylean:", err)
				os.Exit(1)
			}
			return
		}
	}
	s := &pdkserve.Server{New: func() any { return &Config{} }}
	if err := s.ListenAndServe(pdkserve.SocketPath(os.Args[1:])); err != nil {
		fmt.Fprintln(os.Stderr, "emptylean:", err)
		os.Exit(1)
	}
}
