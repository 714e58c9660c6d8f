package main

import (
	"fmt"
	"os"

	"github.com/Kong/go-pdk/server"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// priority places the plugin after authentication plugins (key-auth 1250,
// jwt 1450...) so consumers are known to rate limiting, and just after
// Kong's own rate-limiting (910) rather than tied with it (a tie leaves the
// order between the two to chance).
const priority = 905

func main() {
	if wantsDump(os.Args[1:]) {
		if err := dump(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "service-registry: -dump:", err)
			os.Exit(1)
		}
		return
	}
	if err := server.StartServer(New, version, priority); err != nil {
		fmt.Fprintln(os.Stderr, "service-registry:", err)
		os.Exit(1)
	}
}

func wantsDump(args []string) bool {
	for _, a := range args {
		if a == "-dump" || a == "--dump" || a == "-dump=true" || a == "--dump=true" {
			return true
		}
	}
	return false
}
